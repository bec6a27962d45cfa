"""Which device a command runs on: one check for every ``--device`` option and ``run.device``.

Done before a model or a process group is made, so a misspelt device is a one-line error naming
the option, not a PyTorch traceback from the middle of loading weights.
"""

from __future__ import annotations

from geex.errors import UserError

KINDS = ("cpu", "cuda")


def resolve_device(spec: str, option: str = "`device`") -> str:
    """``spec`` checked and normalized (``"cpu"``, ``"cuda"``, ``"cuda:1"``); ``option`` names where it
    came from in the message. Case and surrounding spaces do not matter."""
    import torch

    text = str(spec).strip().lower()
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise UserError(f"{option} {spec!r} is not a device: use cpu, cuda or cuda:N") from None
    if device.type not in KINDS:
        raise UserError(f"{option} {spec!r}: geex runs on cpu or cuda (cuda:N for the N-th GPU)")
    if device.type == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        raise UserError(f"{option} {spec}: no CUDA device is available here (use cpu)")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"{option} {spec}: there is no GPU {device.index} here "
                        f"({torch.cuda.device_count()} visible: cuda:0 .. cuda:{torch.cuda.device_count() - 1})")
    return str(device)
