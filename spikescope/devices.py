"""Which torch devices this machine offers, and turning a user's `--device` text into one."""
from __future__ import annotations

import torch

from .errors import SpikescopeError


def available_devices() -> list[str]:
    """Device names that work here: `cpu`, then `cuda` and `cuda:N` per GPU."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return names


def resolve_device(name: str | torch.device) -> torch.device:
    """`torch.device(name)` if this machine has it; otherwise a one-line error listing the devices that work."""
    valid = available_devices()
    hint = f"devices available here: {', '.join(valid)}"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise SpikescopeError(f"unknown device {str(name)!r}; {hint}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SpikescopeError(f"--device {name} was asked for, but no CUDA GPU is available; {hint}")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise SpikescopeError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s); {hint}")
    if device.type == "mps":  # every statistic is summed in float64, which Apple's MPS backend lacks
        raise SpikescopeError(f"--device {name}: spikescope keeps its statistics in float64, which Apple's MPS "
                              f"backend does not support; {hint}")
    if device.type not in ("cpu", "cuda"):
        raise SpikescopeError(f"--device {name} is not supported; {hint}")
    return device
