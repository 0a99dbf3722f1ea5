"""Spiking ResNet-20 and ResNet-19 as in the FSTA-SNN reference code (`models/resnet.py`).

ResNet-20: three `conv3x3(64)-BN-LIF` stem layers at full resolution, 2x2 average pooling,
four stages of two basic blocks (64/128/256/512 channels, strides 1/2/2/2), global average
pooling and one linear layer. ResNet-19: one `conv3x3(128)-BN-LIF` stem layer, stages of
3/3/2 blocks (128/256/512, strides 1/2/2). A block is `conv-BN-LIF-conv-BN`, plus the
shortcut, then LIF. `fsta` is False, True / "both", "temporal" or "spatial" (one branch). The
reference code gives ResNet-19's block FSTAs `reduction=16` (an apparent oversight); here
`fsta_reduction` applies to every FSTA and defaults to 1.

`width` scales every layer's channels (rounded to whole channels, at least one) and nothing else: the
depth, the stem, the strides and the FSTA positions stay the reference code's, so `width=0.25` is the same
network at a quarter of the channels and about a sixteenth of the MACs. The pooled shortcut rounds odd map
sizes up, as the strided convolution beside it does (7 px -> 4 px), so ResNet-20 takes 28 x 28 images; on
even sizes (CIFAR's 32 x 32) it is the reference code's shortcut.
"""
from __future__ import annotations

import torch
from torch import nn

from ..fsta import add_fsta, fsta_branches
from ..neurons import LIF
from .layers import SpikingConv, init_like_reference, over_time, time_first
from .registry import register


class BasicBlock(nn.Module):
    """Spiking residual block on `[T, B, C, H, W]`; the sum of the residual and the shortcut drives `lif`."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, pooled_shortcut: bool) -> None:
        super().__init__()
        self.conv_bn_lif = SpikingConv(in_channels, out_channels, stride=stride)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            if pooled_shortcut:
                self.shortcut = nn.Sequential(
                    nn.AvgPool2d(stride, ceil_mode=True) if stride > 1 else nn.Identity(),
                    nn.Conv2d(in_channels, out_channels, 1, bias=False),
                    nn.BatchNorm2d(out_channels),
                )
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                    nn.BatchNorm2d(out_channels),
                )
        self.lif = LIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = over_time(lambda y: self.bn2(self.conv2(y)), self.conv_bn_lif(x))
        return self.lif(residual + over_time(self.shortcut, x))


class SpikingResNet(nn.Module):
    """Stem, residual stages, global average pooling over space, linear readout averaged over T."""

    def __init__(self, stem: list[nn.Module], stem_pool: nn.Module, stages: list[tuple[int, int, int]],
                 in_planes: int, num_classes: int, T: int, fsta: bool | str, fsta_reduction: int,
                 pooled_shortcut: bool) -> None:
        super().__init__()
        self.T = T
        self.stem = nn.Sequential(*stem)
        self.stem_pool = stem_pool
        blocks = []
        for planes, count, stride in stages:
            for index in range(count):
                blocks.append(BasicBlock(in_planes, planes, stride if index == 0 else 1, pooled_shortcut))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(in_planes, num_classes)
        init_like_reference(self)
        if fsta_branches(fsta):
            add_fsta(self, T, reduction=fsta_reduction, branches=fsta_branches(fsta))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = over_time(self.stem_pool, self.stem(time_first(x, self.T)))
        x = self.blocks(x).mean(dim=(-2, -1))
        return self.classifier(x).mean(dim=0)


def scaled(channels: int, width: float) -> int:
    """`channels` at width multiplier `width`, rounded to whole channels (at least one)."""
    if not width > 0:
        raise ValueError(f"width must be a positive multiplier of the channels, got {width}")
    return max(1, round(channels * width))


def resnet20(in_channels: int = 3, num_classes: int = 10, T: int = 2, fsta: bool | str = False,
             fsta_reduction: int = 1, width: float = 1.0) -> SpikingResNet:
    """ResNet-20 of the reference code (CIFAR-10 at T=2 in the paper's recipe), its channels scaled by `width`."""
    stem_channels = scaled(64, width)
    stem = [SpikingConv(in_channels, stem_channels), SpikingConv(stem_channels, stem_channels),
            SpikingConv(stem_channels, stem_channels)]
    stages = [(scaled(planes, width), count, stride) for planes, count, stride in
              [(64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)]]
    return SpikingResNet(stem, nn.AvgPool2d(2), stages, stem_channels, num_classes, T, fsta, fsta_reduction,
                         pooled_shortcut=True)


def resnet19(in_channels: int = 3, num_classes: int = 100, T: int = 2, fsta: bool | str = False,
             fsta_reduction: int = 1, width: float = 1.0) -> SpikingResNet:
    """ResNet-19 of the reference code (CIFAR-100 at T=2 in the paper's recipe), its channels scaled by `width`."""
    stem_channels = scaled(128, width)
    stages = [(scaled(planes, width), count, stride) for planes, count, stride in
              [(128, 3, 1), (256, 3, 2), (512, 2, 2)]]
    return SpikingResNet([SpikingConv(in_channels, stem_channels)], nn.Identity(), stages, stem_channels,
                         num_classes, T, fsta, fsta_reduction, pooled_shortcut=False)


register("resnet20", resnet20)
register("resnet19", resnet19)
