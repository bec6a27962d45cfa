"""SwiGLU's gate: ``silu(gate) * up`` of the fused gate/up projection, one launch.

Why a kernel: eager PyTorch makes two launches (silu, then the product) and a [rows, I]
intermediate. This reads the projection's output (gate and up interleaved) once and rounds where the eager form rounds
(silu to the input's dtype, then the product).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _swiglu_kernel(x_ptr, y_ptr, I, stride_x, stride_y, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = cols < I
    gate = tl.load(x_ptr + row * stride_x + 2 * cols, mask=ok, other=0.0)
    up = tl.load(x_ptr + row * stride_x + 2 * cols + 1, mask=ok, other=0.0).to(tl.float32)
    g = gate.to(tl.float32)
    act = (g / (1.0 + tl.exp(-g))).to(gate.dtype).to(tl.float32)
    tl.store(y_ptr + row * stride_y + cols, (act * up).to(y_ptr.dtype.element_ty), mask=ok)


def swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    """``F.silu(gate) * up`` where ``gate, up = gate_up[..., 0::2], gate_up[..., 1::2]`` (the fused
    projection interleaves their rows: ``geex.models.fusion``)."""
    width = gate_up.shape[-1]
    if width % 2:
        raise ValueError("gate_up needs an even last dimension (gate and up interleaved)")
    i = width // 2
    x2 = gate_up.reshape(-1, width)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    y = torch.empty(x2.shape[0], i, device=gate_up.device, dtype=gate_up.dtype)
    block = 1024
    _swiglu_kernel[(x2.shape[0], triton.cdiv(i, block))](x2, y, i, x2.stride(0), y.stride(0), BLOCK=block,
                                                         num_warps=4)
    return y.reshape(*gate_up.shape[:-1], i)
