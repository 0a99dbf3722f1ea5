"""Operation counts of the modules that carry synapses: convolutions (plain and transposed), linear layers, FSTA.

`synapse_cost(module)` returns the `SynapseCost` the energy metric needs, or None for modules
that perform no synaptic operation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .fsta import FSTA
from .metrics.energy import SynapseCost


class ConvCost(SynapseCost):
    """`Conv1d/2d/3d`: each input element's exact fan-out (borders reach fewer outputs) and dense FLOPs."""

    kind = "conv"

    def __init__(self, conv: nn.modules.conv._ConvNd) -> None:
        self.conv = conv
        self._geometry: dict[tuple, tuple[torch.Tensor, int]] = {}

    def _forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return self.conv._conv_forward(x, weight, None)

    def _dense_positions(self, x: torch.Tensor, out: torch.Tensor) -> int:
        """Positions a dense pass multiplies every weight slice at: the outputs (padding taps included)."""
        return out.numel()

    def _measure(self, sample_shape: torch.Size, device: torch.device) -> tuple[torch.Tensor, int]:
        key = (tuple(sample_shape), torch.device(device))
        if key not in self._geometry:
            # d/dx sum(conv(x, ones)) = how many (output, weight) pairs each input element takes part in
            x = torch.ones(1, *sample_shape, dtype=torch.float64, device=device, requires_grad=True)
            weight = torch.ones_like(self.conv.weight, dtype=torch.float64, device=device)
            with torch.enable_grad():
                out = self._forward(x, weight)
                out.sum().backward()
            taps = self.conv.weight[0].numel()  # per output (conv) or per input (transposed) element
            self._geometry[key] = (x.grad[0].detach(), self._dense_positions(x, out) * taps)
        return self._geometry[key]

    def fan_out(self, sample_shape: torch.Size, device: torch.device) -> torch.Tensor:
        return self._measure(sample_shape, device)[0]

    def dense_ops(self, T: int, sample_shape: torch.Size) -> int:
        return T * self._measure(sample_shape, self.conv.weight.device)[1]


class ConvTransposeCost(ConvCost):
    """`ConvTranspose1d/2d/3d`: every input element scatters into `C_out/groups x k^d` outputs, fewer where
    `padding` crops the border. Dense FLOPs count each input element against the whole kernel.

    The output size is the module's own (`output_padding`); an `output_size` passed at call time is not seen.
    """

    kind = "transposed conv"
    TRANSPOSED = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}

    def _forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        return self.TRANSPOSED[len(conv.kernel_size)](x, weight, None, conv.stride, conv.padding,
                                                      conv.output_padding, conv.groups, conv.dilation)

    def _dense_positions(self, x: torch.Tensor, out: torch.Tensor) -> int:
        return x.numel()


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
    if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        return ConvTransposeCost(module)
    if isinstance(module, nn.Linear):
        return LinearCost(module)
    return None
