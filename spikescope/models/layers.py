"""Building blocks shared by the model zoo: time folding, spiking conv blocks, reference init."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..neurons import LIF


def over_time(per_sample: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply a per-sample function to every timestep of `x: [T, B, ...]` in one call.

    Folding time into the batch makes BatchNorm statistics shared over time, as in the
    reference code's time-shared `BatchNorm3d`.
    """
    return per_sample(x.flatten(0, 1)).unflatten(0, x.shape[:2])


def time_first(x: torch.Tensor, T: int) -> torch.Tensor:
    """Static images `[B, C, H, W]` are repeated T times (direct encoding); `[T, B, C, H, W]` passes."""
    if x.dim() == 4:
        return x.unsqueeze(0).expand(T, *x.shape).contiguous()
    if x.dim() == 5 and x.shape[0] == T:
        return x
    raise ValueError(f"expected [B, C, H, W] or [{T}, B, C, H, W] input, got shape {tuple(x.shape)}")


class SpikingConv(nn.Module):
    """`conv -> BatchNorm -> LIF` on `[T, B, C, H, W]`; FSTA, when added, sits inside `lif`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.lif = LIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif(over_time(lambda y: self.bn(self.conv(y)), x))


def init_like_reference(model: nn.Module) -> None:
    """Weight init of the FSTA-SNN reference code; call it before `add_fsta` so FSTA keeps its own.

    Conv weights `N(0, sqrt(2 / (k^2 C_out)))`, BatchNorm `gamma = 1, beta = 0`, Linear weights
    `N(0, 1 / fan_in)` with zero bias.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 1.0 / module.in_features)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
