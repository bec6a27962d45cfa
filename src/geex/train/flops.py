"""Model FLOPs utilisation: what a training step must compute against what the hardware could.

PaLM's accounting (Chowdhery et al. 2022, appendix B): ``6N + 12·L·H·Q·T`` FLOPs a token, forward
and backward, with N the parameters that take part in matrix products, L layers, H heads of Q
dimensions, T the sequence length. Recomputation (activation checkpointing) does not count: MFU
measures useful work. For CodeGeeX, N leaves out the position and top-query tables (lookups) but
keeps the word embedding once, as the tied output head; L counts the top query layer.
"""

from __future__ import annotations

import torch

from geex.models.codegeex import CodeGeeXConfig

# dense bf16 tensor-core peaks (datasheets, without sparsity), by a fragment of the device name
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.0, "A100": 312.0,
                    "L40S": 362.0, "A10G": 70.0, "RTX 4090": 165.2}


def flops_per_token(cfg: CodeGeeXConfig, seq_len: int) -> float:
    matmul_params = cfg.n_params() - 2 * cfg.n_positions * cfg.n_embd
    return 6.0 * matmul_params + 12.0 * (cfg.n_layer + 1) * cfg.n_embd * seq_len


def peak_flops(device: torch.device, override_tflops: float = 0.0) -> float | None:
    """FLOP/s of one device: the override if given, else a known GPU's datasheet peak, else None."""
    if override_tflops:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for fragment, tflops in PEAK_BF16_TFLOPS.items():  # "H100 PCIe"/"NVL" before "H100": dict order
        if fragment in name:
            return tflops * 1e12
    return None


def mfu(tokens_per_s: float, flops_token: float, peak: float | None, devices: int) -> float | None:
    return None if peak is None else tokens_per_s * flops_token / (peak * devices)
