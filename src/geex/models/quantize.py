"""Weight-only INT8 / INT4 quantization of the linear layers, applied at load time.

Symmetric, no zero points: INT8 keeps one scale per output channel (``max|w| / 127``); INT4 one per
output channel and group of ``group_size`` input features (``max|w| / 7``, q in -8..7; two values a
byte). A word embedding that is also the output head (CodeGeeX's, tied Llama-family ones; read whole
every decode step: 0.5 GB in bf16 at 13B) becomes INT8 rows in both modes (``QuantizedEmbedding``; INT8, not
INT4, because the logits come straight out of it). Activations, position embeddings and LayerNorms
stay in the model's dtype.

On CUDA a ``QuantizedLinear`` runs the fused Triton kernel (``geex.kernels.quant_matmul``); elsewhere
it dequantizes and calls ``F.linear`` -- the plain reference that CPU runs and tests use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from geex.errors import UserError
from geex.models import dispatch

MODES = ("int8", "int4")
DEFAULT_GROUP = 128


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``w[N, K]`` -> (int8 ``q[N, K]``, fp32 ``scale[N]``) with ``w ≈ q * scale[:, None]``. Row
    blocks of ~16M values at a time, so the fp32 temporaries stay small next to a loaded model."""
    q = torch.empty(w.shape, dtype=torch.int8, device=w.device)
    scale = torch.empty(w.shape[0], dtype=torch.float32, device=w.device)
    rows = max(1, (1 << 24) // max(1, w.shape[1]))
    for i in range(0, w.shape[0], rows):
        block = w[i:i + rows].float()
        s = block.abs().amax(dim=1).clamp(min=1e-12) / 127
        q[i:i + rows] = torch.round(block / s[:, None]).clamp(-127, 127).to(torch.int8)
        scale[i:i + rows] = s
    return q, scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return (q.float() * scale.float()[:, None]).to(dtype)


def int8_linear(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ (q * scale).T + bias`` off the GPU without a dequantized copy of the weight: PyTorch's
    int8 weight-only kernel (``_weight_int8pack_mm``, vectorised) for bf16/fp16 activations, where it
    reads a quarter of fp32's bytes; for fp32 activations (that kernel is slow there) the weight is
    widened once and the scale applied to the output, as gpt-fast does."""
    if x.dtype in (torch.bfloat16, torch.float16) and x.device.type == "cpu":
        y = torch.ops.aten._weight_int8pack_mm(x.reshape(-1, x.shape[-1]), q, scale.to(x.dtype))
        y = y.view(*x.shape[:-1], q.shape[0])
        return y if bias is None else y + bias
    return widened_int8_linear(x, q, scale, bias)


def widened_int8_linear(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None
                        ) -> torch.Tensor:
    """``x @ (q * scale).T + bias`` through the dense matmul: the weight widened to x's dtype, the
    scale applied to the output (gpt-fast's form)."""
    y = F.linear(x, q.to(x.dtype)) * scale.to(x.dtype)
    return y if bias is None else y + bias.to(x.dtype)


def scale_as(module: nn.Module, dtype: torch.dtype) -> torch.Tensor:
    """``module.scale`` in ``dtype``, converted once (not at every decode step) and converted again
    only if the buffer is replaced or moved."""
    scale = module.scale
    if scale.dtype == dtype:
        return scale
    key = (dtype, scale.device, scale.data_ptr())
    cached = module.__dict__.get("_scale_as")
    if cached is None or cached[0] != key:
        cached = module.__dict__["_scale_as"] = (key, scale.to(dtype))
    return cached[1]


CPU_INT4_GROUPS = (32, 64, 128, 256)  # what PyTorch's int4 CPU kernel takes (and N a multiple of 16)
# Above this many rows of input, a CPU product widens the weight and runs PyTorch's dense matmul: the
# weight-only kernels are made for a decode step's few rows and barely speed up with more (the
# default model's 512-token prefill in bf16: 1.38 s INT8 and 1.30 s INT4 through them, 0.57 s and
# 0.65 s widened, 0.30 s unquantized; 2 cores). The crossover, measured at 8-128 rows, is where
# widening the weights (once a call: INT8 one pass, INT4's nibbles a few) costs less than it saves.
CPU_WIDEN_ROWS = {"int8": 16, "int4": 96}


def cpu_int4_supported(module: QuantizedLinear) -> bool:
    return (module.qweight.device.type == "cpu" and module.group in CPU_INT4_GROUPS and module.out_features % 16 == 0
            and hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu"))


def int4_linear_cpu(x: torch.Tensor, module: QuantizedLinear) -> torch.Tensor:
    """``x @ W.T + b`` with PyTorch's int4 CPU kernel (``_weight_int4pack_mm_for_cpu``), which reads the
    nibbles where they lie instead of a dequantized copy of W made every call (~70x faster for a
    bf16 row at SmolLM2's shapes). Its layout stores ``u = q + 8`` (ours) with value
    ``(u - 8) * scale + zero``: zero = 0 is our symmetric scheme. The repacked weight and the
    [groups, N, 2] scales are made once per module. Activations run in bf16 (float32 ones are
    rounded to bf16 and the result widened back): the kernel's float32 path is ~17x slower, and the
    rounding is far below INT4's own error."""
    out_dtype = x.dtype
    if x.dtype != torch.bfloat16:
        x = x.to(torch.bfloat16)
    key = (module.qweight.data_ptr(), module.scale.data_ptr())
    cached = module.__dict__.get("_cpu_int4")
    if cached is None or cached[0] != key:
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(nibbles(module.qweight).to(torch.int32), 1)
        scale = module.scale.float().t()
        scales_zeros = torch.stack((scale, torch.zeros_like(scale)), dim=-1).contiguous().to(torch.bfloat16)
        cached = module.__dict__["_cpu_int4"] = (key, packed, scales_zeros)
    _, packed, scales_zeros = cached
    rows = x.reshape(-1, module.in_features).contiguous()
    y = torch.ops.aten._weight_int4pack_mm_for_cpu(rows, packed, module.group, scales_zeros)
    y = y.to(out_dtype)
    if module.bias is not None:
        y = y + module.bias.to(out_dtype)
    return y.reshape(*x.shape[:-1], module.out_features)


def int4_group(k: int, group_size: int) -> int:
    """The group size used for ``k`` input features: ``group_size`` (``k`` if that is smaller) where it
    is a power of two dividing ``k``; else the largest power of two below it, down to 32 (what the
    kernels tile), that divides ``k`` -- finer groups, so a layer whose width is no multiple of the
    group (SmolLM2's 576 = 4.5 x 128) still quantizes."""
    group = min(group_size, k)
    if k % group == 0 and group & (group - 1) == 0:
        return group
    finer = 1 << (group.bit_length() - 1)
    while finer >= 32:
        if k % finer == 0:
            return finer
        finer //= 2
    if k % group == 0 and group % 2 == 0:  # whole groups, but none the kernels tile: the CPU path only
        return group
    raise UserError(f"INT4 group size {group_size} does not divide {k} input features evenly "
                    "(nor does a power of two of at least 32 below it)")


def check_kernel_group(group: int) -> None:
    """The kernels' tiles hold whole groups: a power of two of at least 32."""
    if group < 32 or group & (group - 1):
        raise UserError(f"INT4 groups of {group}: a group must be a power of two of at least 32 "
                        "(the input features must be a multiple of it)")


def quantize_int4(w: torch.Tensor, group_size: int = DEFAULT_GROUP) -> tuple[torch.Tensor, torch.Tensor]:
    """``w[N, K]`` -> (uint8 ``packed[N, K/2]``, ``scale[N, K/group]`` in w's dtype)."""
    n, k = w.shape
    group = int4_group(k, group_size)
    scale_dtype = w.dtype if w.dtype in (torch.float16, torch.bfloat16) else torch.float32
    groups = w.float().reshape(n, k // group, group)
    scale = (groups.abs().amax(dim=2).clamp(min=1e-12) / 7).to(scale_dtype)
    q = torch.round(groups / scale.float()[:, :, None]).clamp(-8, 7).reshape(n, k)
    u = (q + 8).to(torch.uint8)
    packed = u[:, 0::2] | (u[:, 1::2] << 4)
    return packed, scale


def nibbles(packed: torch.Tensor) -> torch.Tensor:
    """The stored values ``u = q + 8`` (0..15) of ``packed[N, K/2]`` as uint8 ``[N, K]``, low nibble first."""
    return torch.stack((packed & 0xF, packed >> 4), dim=-1).reshape(packed.shape[0], -1)


def dequantize_int4(packed: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    n = packed.shape[0]
    q = nibbles(packed).to(torch.int8) - 8
    group = q.shape[1] // scale.shape[1]
    return (q.float().reshape(n, scale.shape[1], group) * scale.float()[:, :, None]).reshape(n, -1).to(dtype)


class QuantizedLinear(nn.Module):
    """Drop-in for ``nn.Linear`` (same ``in_features``/``out_features``/``bias``) with a quantized weight."""

    def __init__(self, qweight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None, in_features: int,
                 mode: str) -> None:
        super().__init__()
        self.in_features, self.out_features, self.mode = in_features, qweight.shape[0], mode
        self.group = in_features // scale.shape[1] if mode == "int4" else 0
        self.register_buffer("qweight", qweight)
        self.register_buffer("scale", scale)
        self.bias = nn.Parameter(bias, requires_grad=False) if bias is not None else None

    @classmethod
    def from_weight(cls, weight: torch.Tensor, bias: torch.Tensor | None, mode: str,
                    group_size: int = DEFAULT_GROUP) -> QuantizedLinear:
        if mode == "int8":
            q, scale = quantize_int8(weight)
        elif mode == "int4":
            check_kernel_group(int4_group(weight.shape[1], group_size))
            q, scale = quantize_int4(weight, group_size)
        else:
            raise UserError(f"unknown quantization {mode!r} (known: {', '.join(MODES)})")
        return cls(q, scale, bias, weight.shape[1], mode)

    def dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        if self.mode == "int8":
            return dequantize_int8(self.qweight, self.scale, dtype)
        return dequantize_int4(self.qweight, self.scale, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda and dispatch.KERNELS != "never":
            from geex.kernels.quant_matmul import wq_matmul

            return wq_matmul(x, self.qweight, self.scale, self.bias, self.group)
        few_rows = x.numel() <= CPU_WIDEN_ROWS[self.mode] * x.shape[-1]  # else a prefill: the dense matmul
        if self.mode == "int8" and dispatch.KERNELS != "never":
            if few_rows:
                return int8_linear(x, self.qweight, scale_as(self, x.dtype), self.bias)
            return widened_int8_linear(x, self.qweight, scale_as(self, x.dtype), self.bias)
        if (self.mode == "int4" and dispatch.KERNELS != "never" and few_rows and cpu_int4_supported(self)
                and not (torch.is_grad_enabled() and x.requires_grad)):  # the kernel has no backward
            return int4_linear_cpu(x, self)
        return F.linear(x, self.dequantized(x.dtype), None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        group = f", group={self.group}" if self.group else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.mode}{group}"


class QuantizedEmbedding(nn.Module):
    """Drop-in for the word ``nn.Embedding`` with INT8 rows (one scale a row, i.e. per output channel
    of the tied head). A lookup dequantizes just the rows it fetches; the head (``geex.models.ops
    .tied_head``) reads the INT8 matrix through the same kernels as a ``QuantizedLinear``."""

    def __init__(self, qweight: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = qweight.shape
        self.dtype = dtype
        self.register_buffer("qweight", qweight)
        self.register_buffer("scale", scale)

    @classmethod
    def from_weight(cls, weight: torch.Tensor) -> QuantizedEmbedding:
        return cls(*quantize_int8(weight), weight.dtype)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1)
        rows = dequantize_int8(self.qweight[flat], self.scale[flat], self.dtype)
        return rows.view(*ids.shape, self.embedding_dim)

    def dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        return dequantize_int8(self.qweight, self.scale, dtype)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, int8"


def linear_names(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, new)


def check_quantizable(model: nn.Module, mode: str, group_size: int = DEFAULT_GROUP) -> None:
    """Whether every linear layer of ``model`` (on any device, meta included) can be quantized as
    ``mode``, checked before any weight is read: INT4 needs each layer's input width to be a whole
    number of groups the kernels can tile. The message names the layer and the mode that works."""
    if mode not in MODES:
        raise UserError(f"unknown quantization {mode!r} (known: {', '.join(MODES)})")
    if mode != "int4":
        return
    for name in linear_names(model):
        k = model.get_submodule(name).in_features
        try:
            check_kernel_group(int4_group(k, group_size))
        except UserError:
            raise UserError(f"`quantize` int4: layer {name} has {k} input features, which no INT4 group of "
                            f"{min(group_size, k)} or a smaller power of two (down to 32) divides; "
                            "use `quantize` int8 instead (per output channel: any width)") from None


def quantize_model(model: nn.Module, mode: str, group_size: int = DEFAULT_GROUP) -> nn.Module:
    """Replace every ``nn.Linear`` of ``model`` (and a word embedding that is also the output head,
    named by ``model.tied_embedding``; see the module's docstring) in place, one at a time (peak memory: one float matrix)."""
    check_quantizable(model, mode, group_size)
    for name in linear_names(model):
        linear = model.get_submodule(name)
        with torch.no_grad():
            replace_module(model, name, QuantizedLinear.from_weight(linear.weight, linear.bias, mode, group_size))
    name = getattr(model, "tied_embedding", None)
    embedding = model.get_submodule(name) if name else None
    if isinstance(embedding, nn.Embedding):
        with torch.no_grad():
            replace_module(model, name, QuantizedEmbedding.from_weight(embedding.weight))
    return model


def weight_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer (what decoding streams from memory, KV cache aside)."""
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
