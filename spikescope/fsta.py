"""FSTA: frequency-based spatial-temporal attention (docs/metrics.md, "FSTA") and `add_fsta(model)`.

FSTA rescales the input current `X: [T, B, C, H, W]` of a spiking layer before the neuron
integrates it: a temporal gate `w_t[b, t]` from pooled descriptors mixed across time, a
spatial gate `w_s[b, h, w]` from a fixed bank of local 2D DCT-II filters applied to the
time-averaged, channel-summed current, and a learnable fusion `Y = (m X_t + n X_s) / 2`.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .dct import dct_basis_2d
from .errors import SpikescopeError

Branches = Literal["both", "temporal", "spatial"]
FUSION_KERNEL = 7  # the learnable k*k -> 1 fusion convolution is 7x7 in the reference code


class FSTA(nn.Module):
    """FSTA for `T` timesteps; `branches` selects the full module or one branch (ablations).

    Accepts `[T, B, C, H, W]` or `[T, B, N]` (treated as `N` channels of 1x1 maps) and
    returns a tensor of the same shape. `channels=None` accepts any channel count; the
    module's parameters do not depend on it (the DCT acts on the channel sum).
    """

    def __init__(
        self,
        channels: int | None,
        T: int,
        dct_size: int = 7,
        reduction: int = 1,
        branches: Branches = "both",
    ) -> None:
        super().__init__()
        if branches not in ("both", "temporal", "spatial"):
            raise ValueError(f"branches must be 'both', 'temporal' or 'spatial', got {branches!r}")
        self.channels = channels
        self.T = T
        self.dct_size = dct_size
        self.branches = branches
        if branches in ("both", "temporal"):
            self.alpha = nn.Parameter(torch.tensor(0.5))
            self.beta = nn.Parameter(torch.tensor(0.5))
            self.time_mixer = nn.Linear(T, T, bias=False)
        if branches in ("both", "spatial"):
            n_freq = dct_size * dct_size
            bank = dct_basis_2d(dct_size).unsqueeze(1)  # [k*k, 1, k, k]
            self.register_buffer("dct_bank", bank, persistent=False)
            pad = FUSION_KERNEL // 2
            if reduction > 1:
                hidden = max(1, n_freq // reduction)
                self.frequency_fusion = nn.Sequential(
                    nn.Conv2d(n_freq, hidden, FUSION_KERNEL, padding=pad, bias=False),
                    nn.ReLU(),
                    nn.Conv2d(hidden, 1, FUSION_KERNEL, padding=pad, bias=False),
                )
            else:
                self.frequency_fusion = nn.Conv2d(n_freq, 1, FUSION_KERNEL, padding=pad, bias=False)
        self.m = nn.Parameter(torch.tensor(0.6))
        self.n = nn.Parameter(torch.tensor(0.5))

    def temporal_weight(self, current: torch.Tensor) -> torch.Tensor:
        """`w_t: [T, B]` in (0, 1) from `alpha * mean_hw + beta * max_hw`, mixed across time."""
        descriptor = self.alpha * current.mean(dim=(-2, -1)) + self.beta * current.amax(dim=(-2, -1))
        mixed = torch.einsum("st,tbc->sbc", self.time_mixer.weight, descriptor)
        return torch.sigmoid(mixed.mean(dim=-1))

    def spatial_weight(self, current: torch.Tensor) -> torch.Tensor:
        """`w_s: [B, 1, H, W]` in (0, 1) from local DCT coefficients of the time- and channel-summed map."""
        summed = current.mean(dim=0).sum(dim=1, keepdim=True)
        k = self.dct_size
        near, far = k // 2, (k - 1) // 2
        padded = F.pad(summed, (near, far, near, far))
        frequencies = F.conv2d(padded, self.dct_bank.to(summed.dtype))
        return torch.sigmoid(self.frequency_fusion(frequencies))

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        if current.shape[0] != self.T:
            raise SpikescopeError(
                f"FSTA expects time-first input with T={self.T} steps, got shape {tuple(current.shape)}"
            )
        if self.channels is not None and current.shape[2] != self.channels:
            raise SpikescopeError(f"FSTA built for {self.channels} channels got input of shape {tuple(current.shape)}")
        flat = current.dim() == 3
        x = current[..., None, None] if flat else current
        x_t = x * (1 + self.temporal_weight(x)[..., None, None, None]) if self.branches != "spatial" else x
        x_s = x_t * (1 + self.spatial_weight(x_t).unsqueeze(0)) if self.branches != "temporal" else x_t
        y = (self.m * x_t + self.n * x_s) / 2
        return y[..., 0, 0] if flat else y

    def macs(self, sample_shape: tuple[int, ...]) -> int:
        """Multiply-accumulates one sample costs over all T steps (`sample_shape` is `[C, H, W]` or `[N]`).

        Counts the time mixing, the DCT bank and fusion convolutions, the pooled descriptors and
        one operation per element for each gate and for the final fusion; all act on real-valued
        current, so all are MACs.
        """
        channels, height, width = (tuple(sample_shape) + (1, 1))[:3]
        elements = self.T * channels * height * width
        pixels = height * width
        total = 2 * elements  # the fusion m X_t + n X_s
        if self.branches != "spatial":
            total += 2 * elements + self.T * self.T * channels + elements  # descriptors, time mixing, gate
        if self.branches != "temporal":
            n_freq = self.dct_size ** 2
            fusion = sum(m.weight.numel() for m in self.frequency_fusion.modules() if isinstance(m, nn.Conv2d))
            total += elements + n_freq * n_freq * pixels + fusion * pixels + elements  # sums, bank, fusion, gate
        return total

    def extra_repr(self) -> str:
        return f"channels={self.channels}, T={self.T}, dct_size={self.dct_size}, branches={self.branches!r}"


def _apply_fsta(neuron: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: run the neuron's FSTA child on its input current."""
    return (neuron.fsta(args[0]),) + tuple(args[1:])


def attach_fsta(neuron: nn.Module, fsta: FSTA) -> nn.Module:
    """Make `neuron` apply `fsta` to its input current; FSTA becomes the child `neuron.fsta`.

    Existing state-dict keys keep their names; the FSTA parameters appear under `<neuron>.fsta.`.
    """
    if hasattr(neuron, "fsta"):
        raise SpikescopeError(f"{type(neuron).__name__} already has an FSTA module")
    neuron.add_module("fsta", fsta)
    neuron.register_forward_pre_hook(_apply_fsta)
    return neuron


def add_fsta(
    model: nn.Module,
    T: int,
    is_spiking_layer=None,
    dct_size: int = 7,
    reduction: int = 1,
    branches: Branches = "both",
) -> nn.Module:
    """Insert FSTA in front of every spiking layer of a time-first model; returns the model.

    `is_spiking_layer(module) -> bool` decides which modules are neurons (default:
    spikescope's `LIF`). The neurons must be called with `[T, B, ...]` input currents.
    """
    from .neurons import LIF

    predicate = is_spiking_layer or (lambda module: isinstance(module, LIF))
    neurons = [module for module in model.modules() if predicate(module) and not isinstance(module, FSTA)]
    if not neurons:
        raise SpikescopeError("add_fsta found no spiking layer in the model")
    for neuron in neurons:
        attach_fsta(neuron, FSTA(None, T, dct_size=dct_size, reduction=reduction, branches=branches))
    return model
