"""Spike activation maps (SAM, Kim & Panda 2021): where and when a layer's neurons fire in quick succession,
from the spikes alone, without gradients (docs/metrics.md, "Attribution").

A neuron that fires at t contributes `sum over its spikes t' <= t of exp(-gamma (t - t'))`: 1 for the spike at
t itself, plus more the more recently it fired before; the map at t sums those contributions over the
channels of every neuron that fires at t. The sum over spikes is a trace updated once per timestep, so memory
does not grow with T.
"""
from __future__ import annotations

import math

import pandas as pd
import torch

from .base import Metric, MetricResult

# The decay per timestep, as Kim & Panda's released code sets it (main.py, `--gamma`, default 0.5) in
# github.com/Intelligent-Computing-Lab-Yale/Visual-Explanations-from-Spiking-Neural-Networks-using-Interspike-Intervals
# 0.4, spikescope's earlier default, comes from third-party re-implementations (docs/metrics.md, "Attribution").
DEFAULT_GAMMA = 0.5

DEFINITION = ("spike activation map SAM[t, i, j] = sum over channels k of s[k, i, j, t] x sum over the neuron's "
              "spikes t' <= t of exp(-gamma (t - t')) s[k, i, j, t'], s the spikes (counts for multi-spike neurons); "
              "zero where no neuron fires at t; the report shows it per sample "
              "and its mean over the analysed samples")


def spike_activation_map(spikes: torch.Tensor, gamma: float = DEFAULT_GAMMA) -> torch.Tensor:
    """SAM `[T, B, H, W]` (float32) of `spikes: [T, B, C, H, W]`, one timestep at a time."""
    if spikes.dim() != 5:
        raise ValueError(f"spike activation maps need spike maps [T, B, C, H, W], got shape {tuple(spikes.shape)}")
    if gamma < 0:
        raise ValueError(f"gamma must be at least 0, got {gamma}")
    decay = math.exp(-gamma)
    trace = torch.zeros_like(spikes[0], dtype=torch.float32)  # sum over t' <= t of exp(-gamma (t - t')) s[t']
    maps = []
    for step in spikes:
        step = step.float()
        trace.mul_(decay).add_(step)
        maps.append(torch.einsum("bchw,bchw->bhw", trace, step))
    return torch.stack(maps)


class SpikeActivationMap(Metric):
    """States per layer with 2D maps: the SAM summed over samples `[T, H, W]`, and the samples seen.

    Layers with no spatial map (`[T, B, N]`) are skipped.
    """

    reductions = {"sam_sum": "sum", "samples": "sum"}
    float_sums = ("sam_sum",)

    def __init__(self, gamma: float = DEFAULT_GAMMA) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be at least 0, got {gamma}")
        self.gamma = gamma

    def update(self, layer: str, spikes: torch.Tensor) -> None:
        """`spikes: [T, B, C, H, W]`; other shapes carry no 2D map and are ignored."""
        if spikes.dim() != 5:
            return
        self._accumulate(layer, {
            "sam_sum": spike_activation_map(spikes, self.gamma).double().sum(dim=1),
            "samples": torch.tensor(spikes.shape[1], dtype=torch.int64, device=spikes.device),
        })

    def compute(self) -> MetricResult:
        rows, maps = [], {}
        for layer, s in self.states.items():
            mean_map = (s["sam_sum"] / int(s["samples"])).cpu().numpy()
            maps[layer] = mean_map
            rows.append({"layer": layer, "sam_mean": float(mean_map.mean())})
        return MetricResult(pd.DataFrame(rows, columns=("layer", "sam_mean")), None, {"sam": maps},
                            {"spike activation map": f"{DEFINITION}; here gamma = {self.gamma}"})
