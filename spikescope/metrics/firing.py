"""Firing rates: per layer, per timestep, per channel, and the fraction of silent neurons (docs/metrics.md)."""
from __future__ import annotations

import pandas as pd
import torch

from .base import Metric, MetricResult

DEFINITION = ("firing rate = spikes / (T x samples x neurons): the mean of the binary output over time, "
              "samples and neurons (for multi-spike neurons, the mean spike count); per timestep it is spikes at "
              "t / (samples x neurons); per channel, spikes in the channel / (T x samples x neurons per channel); "
              "a neuron is silent if it never fired at any timestep on any analysed sample; per position (token), "
              "spikes at the position / (T x samples x channels)")


def as_channel_maps(spikes: torch.Tensor) -> torch.Tensor:
    """View `[T, B, C, ...]` (conv) or `[T, B, N]` (linear) as float32 `[T, B, C, positions]`."""
    return spikes.reshape(*spikes.shape[:3], -1).float()


class FiringRate(Metric):
    """States per layer: spike counts `[T, C]` and per position (`[positions]`: tokens, pixels), samples seen, and
    which neurons ever fired (`[C, positions]`, max)."""

    reductions = {"spikes": "sum", "position_spikes": "sum", "samples": "sum", "ever_fired": "max"}

    def update(self, layer: str, spikes: torch.Tensor) -> None:
        """`spikes: [T, B, C, H, W]` or `[T, B, N]`, in {0, 1} or spike counts."""
        x = as_channel_maps(spikes)
        counts = x.sum(dim=1).double()  # [T, C, positions], the one pass over x; exact: float32 sums of B counts
        self._accumulate(layer, {
            "spikes": counts.sum(dim=2),
            "position_spikes": counts.sum(dim=(0, 1)),
            "samples": torch.tensor(x.shape[1], dtype=torch.int64, device=x.device),
            "ever_fired": (counts.amax(dim=0) > 0).to(torch.uint8),  # counts >= 0: a sum > 0 iff a spike
        })

    def compute(self) -> MetricResult:
        rows, steps, channels, channel_silence, positions, position_silence = [], [], {}, {}, {}, {}
        for layer, s in self.states.items():
            T, C = s["spikes"].shape
            neurons = s["ever_fired"].numel()
            samples = int(s["samples"])
            total = float(s["spikes"].sum())
            per_step = (s["spikes"].sum(dim=1) / (samples * neurons)).cpu()
            rows.append({"layer": layer, "neurons": neurons, "samples": samples, "T": T, "spikes": total,
                         "firing_rate": total / (T * samples * neurons),
                         "silent_fraction": 1.0 - float(s["ever_fired"].double().mean())})
            steps += [{"layer": layer, "t": t, "firing_rate": float(r)} for t, r in enumerate(per_step)]
            channels[layer] = (s["spikes"].sum(dim=0) / (T * samples * (neurons // C))).cpu().numpy()
            channel_silence[layer] = 1.0 - s["ever_fired"].double().mean(dim=1).cpu().numpy()
            positions[layer] = (s["position_spikes"] / (T * samples * C)).cpu().numpy()
            position_silence[layer] = 1.0 - s["ever_fired"].double().mean(dim=0).cpu().numpy()
        return MetricResult(pd.DataFrame(rows), pd.DataFrame(steps),
                            {"channel_firing_rate": channels, "channel_silent_fraction": channel_silence,
                             "position_firing_rate": positions, "position_silent_fraction": position_silence},
                            {"firing_rate": DEFINITION})
