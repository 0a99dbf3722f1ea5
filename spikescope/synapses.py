"""Operation counts of the modules that carry synapses: convolutions (plain and transposed), linear layers, FSTA.

`synapse_cost(module)` returns the `SynapseCost` the energy metric needs, or None for modules
that perform no synaptic operation.
"""
from __future__ import annotations

import torch
from torch import nn

from .energy.geometry import ConvSpec, conv_geometry
from .fsta import FSTA
from .metrics.energy import SynapseCost


class ConvCost(SynapseCost):
    """`Conv1d/2d/3d` and `ConvTranspose1d/2d/3d` modules: exact fan-outs and dense FLOPs (`conv_geometry`).

    A transposed convolution's output size is the module's own (`output_padding`); an `output_size` passed at
    call time is not seen.
    """

    def __init__(self, conv: nn.modules.conv._ConvNd) -> None:
        self.conv = conv
        self.spec = ConvSpec.of_module(conv)
        self.kind = "transposed conv" if self.spec.transposed else "conv"

    def fan_out(self, sample_shape: torch.Size, device: torch.device) -> torch.Tensor:
        return conv_geometry(self.spec, sample_shape, device)[0]

    def dense_ops(self, T: int, sample_shape: torch.Size) -> int:
        return T * conv_geometry(self.spec, sample_shape, self.conv.weight.device)[1]


class LinearCost(SynapseCost):
    """`Linear`: every input element reaches `out_features` outputs."""

    kind = "linear"
    operator = "linear"

    def __init__(self, linear: nn.Linear) -> None:
        self.out_features = linear.out_features

    def fan_out(self, sample_shape: torch.Size, device: torch.device) -> torch.Tensor:
        return torch.full(tuple(sample_shape), float(self.out_features), dtype=torch.float64, device=device)

    def dense_ops(self, T: int, sample_shape: torch.Size) -> int:
        return T * int(torch.Size(sample_shape).numel()) * self.out_features


class FSTACost(SynapseCost):
    """FSTA acts on real-valued current: always MACs (`FSTA.macs`)."""

    kind = "fsta"
    operator = "fsta"
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
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                           nn.ConvTranspose3d)):
        return ConvCost(module)
    if isinstance(module, nn.Linear):
        return LinearCost(module)
    return None
