"""Operation counts of the modules that carry synapses: convolutions (plain and transposed), linear layers, FSTA.

`synapse_cost(module)` returns the `SynapseCost` the energy metric needs, or None for modules
that perform no synaptic operation.
"""
from __future__ import annotations

import torch
from torch import nn

from .fsta import FSTA
from .metrics.energy import SynapseCost


class ConvCost(SynapseCost):
    """`Conv1d/2d/3d`: each input element's exact fan-out (borders reach fewer outputs) and dense FLOPs.

    Every input channel feeds `C_out / groups` output channels through the same spatial taps, so
    the geometry is measured once on a one-channel copy of the convolution and scaled.
    """

    kind = "conv"

    def __init__(self, conv: nn.modules.conv._ConvNd) -> None:
        self.conv = conv
        self._geometry: dict[tuple, tuple[torch.Tensor, int]] = {}

    def _one_channel(self) -> nn.modules.conv._ConvNd:
        conv = self.conv
        return type(conv)(1, 1, conv.kernel_size, stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
                          bias=False, padding_mode=conv.padding_mode)

    def _dense_positions(self, spatial_in: int, spatial_out: int) -> int:
        """Positions a dense pass multiplies every weight slice at: the outputs (padding taps included)."""
        return self.conv.out_channels * spatial_out

    def _measure(self, sample_shape: torch.Size, device: torch.device) -> tuple[torch.Tensor, int]:
        key = (tuple(sample_shape), torch.device(device))
        if key not in self._geometry:
            # d/dx sum(conv(x, ones)) = how many (output, tap) pairs each input position takes part in
            single = self._one_channel().to(device=device, dtype=torch.float64)
            nn.init.ones_(single.weight)
            x = torch.ones(1, 1, *sample_shape[1:], dtype=torch.float64, device=device, requires_grad=True)
            with torch.enable_grad():
                out = single(x)
                out.sum().backward()
            conv = self.conv
            fan_out = (x.grad[0, 0] * (conv.out_channels // conv.groups)).expand(sample_shape)
            taps = conv.weight[0].numel()  # per output (conv) or per input (transposed) element
            self._geometry[key] = (fan_out, self._dense_positions(x.numel(), out.numel()) * taps)
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

    def _one_channel(self) -> nn.modules.conv._ConvNd:
        conv = self.conv
        return type(conv)(1, 1, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                          output_padding=conv.output_padding, dilation=conv.dilation, bias=False,
                          padding_mode=conv.padding_mode)

    def _dense_positions(self, spatial_in: int, spatial_out: int) -> int:
        return self.conv.in_channels * spatial_in


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
