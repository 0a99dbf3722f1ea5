"""The geometry of a convolution: every input element's exact fan-out and the dense FLOPs, plain or transposed."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ConvSpec:
    """The geometry of one convolution, plain or transposed, whether a module or `F.conv*` ran it."""

    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...] | str  # a module may say "same" or "valid"
    dilation: tuple[int, ...]
    groups: int
    transposed: bool = False
    output_padding: tuple[int, ...] = ()
    padding_mode: str = "zeros"

    @classmethod
    def of_module(cls, conv: nn.modules.conv._ConvNd) -> "ConvSpec":
        transposed = isinstance(conv, nn.modules.conv._ConvTransposeNd)
        return cls(conv.in_channels, conv.out_channels, tuple(conv.kernel_size), tuple(conv.stride),
                   conv.padding if isinstance(conv.padding, str) else tuple(conv.padding),
                   tuple(conv.dilation), conv.groups, transposed,
                   tuple(conv.output_padding) if transposed else (), conv.padding_mode)

    @classmethod
    def of_operator(cls, weight: torch.Tensor, stride, padding, dilation, transposed: bool, output_padding,
                    groups: int) -> "ConvSpec":
        """From `aten.convolution`'s arguments (weight `[C_out, C_in/g, k..]`, transposed `[C_in, C_out/g, k..]`)."""
        if transposed:
            in_channels, out_channels = weight.shape[0], weight.shape[1] * groups
        else:
            in_channels, out_channels = weight.shape[1] * groups, weight.shape[0]
        return cls(int(in_channels), int(out_channels), tuple(weight.shape[2:]), tuple(stride), tuple(padding),
                   tuple(dilation), int(groups), bool(transposed), tuple(output_padding) if transposed else ())

    def taps(self) -> int:
        """Weights one output (plain) or one input (transposed) element meets in one channel group."""
        per_group = (self.out_channels if self.transposed else self.in_channels) // self.groups
        return per_group * math.prod(self.kernel_size)

    def one_channel(self) -> nn.modules.conv._ConvNd:
        """A one-channel, bias-free convolution with this geometry: where every input position's taps land."""
        dims = len(self.kernel_size)
        kind = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d) if self.transposed else (
            nn.Conv1d, nn.Conv2d, nn.Conv3d)
        extra = {"output_padding": self.output_padding} if self.transposed else {}
        return kind[dims - 1](1, 1, self.kernel_size, stride=self.stride, padding=self.padding,
                              dilation=self.dilation, bias=False, padding_mode=self.padding_mode, **extra)


_GEOMETRY: dict[tuple, tuple[torch.Tensor, int]] = {}
GEOMETRIES_KEPT = 256


def conv_geometry(spec: ConvSpec, sample_shape: torch.Size, device: torch.device) -> tuple[torch.Tensor, int]:
    """`(fan_out, dense)` of one sample `[C_in, *spatial]`: every input element's exact fan-out (borders reach
    fewer outputs; a transposed convolution's cropped outputs are not reached) and the dense MACs of one
    timestep (the FLOPs convention). Every input channel feeds `C_out / groups` output channels through the same
    spatial taps, so the geometry is measured once on a one-channel copy and scaled; results are cached."""
    key = (spec, tuple(sample_shape), torch.device(device))
    if key not in _GEOMETRY:
        if len(_GEOMETRY) >= GEOMETRIES_KEPT:  # a run sees a few shapes; a long session with many starts over
            _GEOMETRY.clear()
        with torch.inference_mode(False), torch.enable_grad():  # d/dx sum(conv(x, ones)) = taps x takes part in
            single = spec.one_channel().to(device=device, dtype=torch.float64)
            nn.init.ones_(single.weight)
            x = torch.ones(1, 1, *sample_shape[1:], dtype=torch.float64, device=device, requires_grad=True)
            out = single(x)
            out.sum().backward()
        fan_out = (x.grad[0, 0] * (spec.out_channels // spec.groups)).expand(tuple(sample_shape))
        positions = spec.in_channels * x.numel() if spec.transposed else spec.out_channels * out.numel()
        _GEOMETRY[key] = (fan_out.detach(), positions * spec.taps())
    return _GEOMETRY[key]
