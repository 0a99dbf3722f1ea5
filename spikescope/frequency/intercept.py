"""Remove DCT coefficients from a spiking layer's output on its way to the next layer (a forward hook).

The removal acts on each channel map of each sample and timestep on its own, so it needs only the last two axes of
the layer's maps: it is the same in every time layout (`[T, B, C, H, W]`, `[B, T, ...]`, time folded into the
batch, one call per timestep). Token layers on a patch grid are read as the metrics read them (`tokens.as_features`:
features as channels, tokens as an `h x w` map) and put back in their own layout afterwards.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from ..dct import dct_matrix
from ..errors import SpikescopeError
from ..tokens import Geometry, as_features, from_features

THRESHOLD = 0.5  # re-binarised maps spike where the ablated value reaches this


def remove_coefficients(maps: torch.Tensor, gain: torch.Tensor, binarize: bool = False) -> torch.Tensor:
    """`maps: [..., H, W]` with each 2D-DCT coefficient `(u, v)` scaled by `gain[u, v]`, as
    `S - D_H^T ((1 - g) * (D_H S D_W^T)) D_W`: a gain of ones returns `maps` exactly, a gain of zeros returns zeros
    exactly. With `binarize`, the result is thresholded at 0.5 so that the next layer sees spikes again."""
    if bool((gain == 1).all()):
        return maps
    if bool((gain == 0).all()):
        return torch.zeros_like(maps)
    values = maps if maps.is_floating_point() else maps.float()
    height, width = values.shape[-2:]
    d_h, d_w = (_dct(n, values.dtype, values.device) for n in (height, width))
    removed = d_h.T @ ((1 - gain.to(values)) * (d_h @ values @ d_w.T)) @ d_w
    ablated = values - removed
    return (ablated >= THRESHOLD).to(values.dtype) if binarize else ablated


@lru_cache(maxsize=32)
def _dct(size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The DCT matrix of one map size, made once: the hook runs on every call of the layer."""
    return dct_matrix(size, dtype=dtype, device=device)


class BandRemover:
    """A forward hook on `module` that passes its output through `remove_coefficients` with the current `gain`
    (`[H, W]` of the layer's maps as the metrics read them; None passes the output untouched). `geometry` is the
    layer's (`SpikeRecorder.layers`); snnTorch's `(spikes, membrane)` outputs lose coefficients in the spikes only."""

    def __init__(self, module: nn.Module, geometry: Geometry | None, binarize: bool = False) -> None:
        self.geometry = geometry
        self.binarize = binarize
        self.gain: torch.Tensor | None = None
        self._handle = module.register_forward_hook(self._ablate)

    def set_gain(self, gain: np.ndarray | torch.Tensor | None) -> None:
        self.gain = None if gain is None else torch.as_tensor(gain, dtype=torch.float64)

    def remove(self) -> None:
        self._handle.remove()

    def __enter__(self) -> "BandRemover":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.remove()

    def _ablate(self, module: nn.Module, args: tuple, output: Any) -> Any:
        if self.gain is None:
            return None
        if isinstance(output, torch.Tensor):
            return self._ablated(output)
        index = next((i for i, value in enumerate(output) if isinstance(value, torch.Tensor)), None) if isinstance(
            output, (tuple, list)) else None
        if index is None:
            raise SpikescopeError(f"{type(module).__name__} returns {type(output).__name__}, not a tensor or a tuple "
                                  "holding one: its spikes cannot be ablated")
        values = (*output[:index], self._ablated(output[index]), *output[index + 1:])
        return output._make(values) if hasattr(output, "_make") else type(output)(values)  # namedtuples too

    def _ablated(self, spikes: torch.Tensor) -> torch.Tensor:
        maps = as_features(spikes, self.geometry)
        return from_features(remove_coefficients(maps, self.gain, self.binarize), self.geometry)
