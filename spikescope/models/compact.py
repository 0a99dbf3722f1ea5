"""A compact spiking CNN for 1x28x28 images (Fashion-MNIST): five spiking layers at 28, 14 and 7 px (at full, half
and quarter size for other images, such as CIFAR's 3x32x32)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..fsta import add_fsta, fsta_branches
from .layers import SpikingConv, init_like_reference, over_time, time_first
from .registry import register


class CompactCNN(nn.Module):
    """Five `conv-BN-LIF` layers (28x28, 28x28, 14x14, 14x14, 7x7) and a linear readout.

    Max pooling keeps the spikes binary, so every layer after the first is fed spikes.
    The readout sees the flattened spikes of the last layer at every timestep; logits are
    averaged over time. `width` scales every channel count (16 gives ~130k parameters). `image_size` is the
    input's side, or `[height, width]`: the readout's size follows from it. `fsta`: False, True (or "both")
    for FSTA in front of every spiking layer, or "temporal" / "spatial" for one branch.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, T: int = 2, fsta: bool | str = False,
                 width: int = 16, image_size: int | Sequence[int] = 28) -> None:
        super().__init__()
        self.T = T
        c1, c2, c3 = width, 2 * width, 4 * width
        self.block1 = SpikingConv(in_channels, c1)
        self.block2 = SpikingConv(c1, c2)
        self.block3 = SpikingConv(c2, c3)
        self.block4 = SpikingConv(c3, c3)
        self.block5 = SpikingConv(c3, c3)
        self.pool = nn.MaxPool2d(2)
        height, width_px = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.classifier = nn.Linear(c3 * (height // 4) * (width_px // 4), num_classes)
        init_like_reference(self)
        if fsta_branches(fsta):
            add_fsta(self, T, branches=fsta_branches(fsta))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block2(self.block1(time_first(x, self.T)))
        x = self.block4(self.block3(over_time(self.pool, x)))
        x = self.block5(over_time(self.pool, x))
        return self.classifier(x.flatten(2)).mean(dim=0)


register("compact_cnn", CompactCNN)
