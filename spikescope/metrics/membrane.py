"""Where membrane potentials sit relative to the threshold, per layer and timestep (docs/metrics.md, "Membrane
potential"): a histogram on fixed bins in threshold units, mean and spread, the share just below threshold and
the share reset (fired)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .base import Metric, MetricResult

LOW, HIGH, WIDTH = -6.0, 1.0, 0.1  # bins of u / threshold for neurons that did not fire
BINS = round((HIGH - LOW) / WIDTH)
EDGES = np.round(np.linspace(LOW, HIGH, BINS + 1), 9)  # the decimals themselves: 0.9, not linspace's 0.9000000000000004
NEAR = 0.9  # "just below threshold": u / threshold in [0.9, 1]
COLUMNS = ("below", *(f"{a:.2f}..{b:.2f}" for a, b in zip(EDGES[:-1], EDGES[1:])), "fired")

DEFINITION = (f"membrane potential u in threshold units, u / threshold, at the moment of the spike decision, for "
              f"neurons that did not fire at t; histogram counts per timestep: below {LOW:g}, {BINS} bins of "
              f"{WIDTH:g} from {LOW:g} to {HIGH:g}, and fired (reset); mean and population SD (n in the denominator) "
              f"over the neurons that did not fire; bins hold [a, b), the last [{NEAR:g}, 1] and any higher value of a "
              f"neuron that did not fire; near-threshold share = neurons with u / threshold >= {NEAR:g} that did not "
              "fire / all; reset share = neurons that fired / all (all = samples x neurons per timestep)")


class MembranePotential(Metric):
    """States per layer: histogram counts `[T, BINS + 2]` (below, bins, fired), near-threshold counts `[T]`, and
    the sum and sum of squares of u / threshold over the neurons that did not fire `[T]`."""

    inputs = "membrane"
    reductions = {"histogram": "sum", "near": "sum", "sum": "sum", "squares": "sum"}
    float_sums = ("sum", "squares")

    def update(self, layer: str, potential: torch.Tensor, spikes: torch.Tensor,
               threshold: float | torch.Tensor) -> None:
        """`potential`, `spikes`: `[T, B, ...]`; `threshold`: the firing threshold, one number or one per neuron
        (a tensor that broadcasts over the trailing dimensions). One timestep at a time, so the temporaries
        stay a few times the size of one step's spikes."""
        edges = torch.from_numpy(EDGES).to(potential.device)
        steps = [self._step(u, s, threshold, edges) for u, s in zip(potential, spikes)]
        self._accumulate(layer, {name: torch.stack([step[name] for step in steps]) for name in self.reductions})

    @staticmethod
    def _step(potential: torch.Tensor, spikes: torch.Tensor, threshold: float | torch.Tensor,
              edges: torch.Tensor) -> dict[str, torch.Tensor]:
        """One timestep's states. The ratio is taken in float64 and compared with the edges exactly: a value on an
        edge belongs to the bin that the edge opens."""
        ratio = (potential.double() / threshold).flatten()
        fired = spikes.flatten() > 0
        bins = torch.bucketize(ratio, edges, right=True).clamp_(max=BINS)  # 0: below LOW; BINS: [0.9, 1] and above
        bins[fired] = BINS + 1
        quiet = ratio.masked_fill_(fired, 0.0)
        return {"histogram": torch.bincount(bins, minlength=BINS + 2), "near": (quiet >= NEAR).sum(),
                "sum": quiet.sum(), "squares": torch.dot(quiet, quiet)}

    def compute(self) -> MetricResult:
        rows, steps, histograms = [], [], {}
        for layer, s in self.states.items():
            histogram = s["histogram"].cpu().numpy()
            histograms[layer] = histogram
            summaries = [_summary(histogram[t], *(float(s[k][t]) for k in ("near", "sum", "squares")))
                         for t in range(len(histogram))]
            rows.append({"layer": layer, **_summary(histogram.sum(axis=0), *(float(s[k].sum())
                                                                            for k in ("near", "sum", "squares")))})
            steps += [{"layer": layer, "t": t, **summary} for t, summary in enumerate(summaries)]
        columns = ("membrane_mean", "membrane_sd", "near_threshold_share", "reset_share")
        return MetricResult(pd.DataFrame(rows, columns=("layer", *columns)),
                            pd.DataFrame(steps, columns=("layer", "t", *columns)),
                            {"membrane_histogram": histograms}, {"membrane potential": DEFINITION})


def _summary(histogram: np.ndarray, near: float, total: float, squares: float) -> dict[str, float]:
    """Mean, SD, near-threshold share and reset share from one histogram row (or the sum of rows) and its sums."""
    entries, fired = float(histogram.sum()), float(histogram[-1])
    quiet = entries - fired
    mean = total / quiet if quiet else float("nan")
    variance = squares / quiet - mean * mean if quiet else float("nan")
    return {"membrane_mean": mean, "membrane_sd": float(np.sqrt(max(variance, 0.0))) if quiet else float("nan"),
            "near_threshold_share": near / entries if entries else float("nan"),
            "reset_share": fired / entries if entries else float("nan")}
