"""Operation counts of the modules that carry synapses: convolutions, linear layers and FSTA.

`synapse_cost(module)` returns the `SynapseCost` the energy metric needs, or None for modules
that perform no synaptic operation.
"""
from __future__ import annotations

import torch
from torch import nn

from .fsta import FSTA
from .metrics.energy import SynapseCost


class ConvCost(SynapseCost):
    """`Conv1d/2d/3d`: each input element's exact fan-out (borders reach fewer outputs) and dense FLOPs."""

    kind = "conv"

    def __init__(self, conv: nn.modules.conv._ConvNd) -> None:
        self.conv = conv
        self._geometry: dict[tuple, tuple[torch.Tensor, int]] = {}

    def _measure(self, sample_shape: torch.Size, device: torch.device) -> tuple[torch.Tensor, int]:
        key = (tuple(sample_shape), torch.device(device))
        if key not in self._geometry:
            # d/dx sum(conv(x, ones)) = how many (output, weight) pairs each input element takes part in
            x = torch.ones(1, *sample_shape, dtype=torch.float64, device=device, requires_grad=True)
            weight = torch.ones_like(self.conv.weight, dtype=torch.float64, device=device)
            with torch.enable_grad():
                out = self.conv._conv_forward(x, weight, None)
                out.sum().backward()
            taps = self.conv.weight[0].numel()  # C_in / groups x prod(kernel)
            self._geometry[key] = (x.grad[0].detach(), out.numel() * taps)
        return self._geometry[key]

    def fan_out(self, sample_shape: torch.Size, device: torch.device) -> torch.Tensor:
        return self._measure(sample_shape, device)[0]

    def dense_ops(self, T: int, sample_shape: torch.Size) -> int:
        return T * self._measure(sample_shape, self.conv.weight.device)[1]


class LinearCost(SynapseCost):
    """`Linear`: every input element reaches `out_features` outputs."""

    kind = "linear"

    def __init__(self, linear: nn.Linear) -> None:
        self.out_features = linear.out_features

    def fan_out(self, sample_shape: torch.Size, device: torch.device) -> torch.Tensor:
        return torch.full(tuple(sample_shape), float(self.out_features), dtype=torch.float64, device=device)

    def dense_ops(self, T: int, sample_shape: torch.Size) -> int:
        return T * int(torch.Size(sample_shape).numel()) * self.out_features


class FSTACost(SynapseCost):
    """FSTA acts on real-valued current: always MACs (`FSTA.macs`)."""

    kind = "fsta"
    accepts_spikes = False

    def __init__(self, fsta: FSTA) -> None:
        self.fsta = fsta

    def dense_ops(self, T: int, sample_shape: torch.Size) -> int:
        return self.fsta.macs(tuple(sample_shape))


def synapse_cost(module: nn.Module) -> SynapseCost | None:
    """The cost model of `module`, or None if it has no synapses (FSTA's inner convolutions are
    counted by `FSTACost`, not on their own)."""
    if isinstance(module, FSTA):
        return FSTACost(module)
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return ConvCost(module)
    if isinstance(module, nn.Linear):
        return LinearCost(module)
    return None
