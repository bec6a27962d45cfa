"""Model FLOPs utilisation: what a training step must compute against what the hardware could.

PaLM's accounting (Chowdhery et al. 2022, appendix B): ``6N + 12·L·H·Q·T`` FLOPs a token, forward
and backward, with N the parameters that take part in matrix products, L layers, H heads of Q
dimensions, T the sequence length. Recomputation (activation checkpointing) does not count: MFU
measures useful work. What N and L hold is the model family's to say (its ``TrainingSpec``: for
CodeGeeX, N leaves out the position and top-query tables, lookups, and L counts the top query layer).
"""

from __future__ import annotations

import torch

from geex.train.families import spec_for

# dense bf16 tensor-core peaks (datasheets, without sparsity), by a fragment of the device name
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.0, "A100": 312.0,
                    "L40S": 362.0, "A10G": 70.0, "RTX 4090": 165.2}


def flops_per_token(cfg, seq_len: int) -> float:
    """FLOPs a trained token of a model with config ``cfg`` costs, forward and backward."""
    return spec_for(cfg).flops_per_token(cfg, seq_len)


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
