"""Cross-timestep similarity of spike patterns (docs/metrics.md): a `T x T` matrix per layer."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .base import Metric, MetricResult, mean_off_diagonal

DEFINITION = ("spike cosine[t, t'] = mean over samples of <s_t, s_t'> / (|s_t| |s_t'|), s_t the sample's spike "
              "vector over the layer's neurons at timestep t; a sample with no spike at t or t' is left out of "
              "that entry and counted in left_out[t, t']; similarity_left_out_max is the largest such count over "
              "t != t'")


class TemporalSimilarity(Metric):
    """States per layer: sum of per-sample cosines `[T, T]`, samples counted and samples left out `[T, T]`."""

    reductions = {"cosine_sum": "sum", "counted": "sum", "left_out": "sum"}
    float_sums = ("cosine_sum",)

    def update(self, layer: str, spikes: torch.Tensor) -> None:
        """`spikes: [T, B, ...]` in {0, 1}."""
        flat = spikes.reshape(*spikes.shape[:2], -1).float()
        gram = torch.einsum("tbn,sbn->bts", flat, flat).double()  # co-firing counts per sample
        norms = gram.diagonal(dim1=1, dim2=2).sqrt()  # [B, T]
        denominator = norms[:, :, None] * norms[:, None, :]
        valid = denominator > 0
        cosine = torch.where(valid, gram / denominator.clamp_min(1e-300), torch.zeros_like(gram))
        self._accumulate(layer, {
            "cosine_sum": cosine.sum(dim=0),
            "counted": valid.sum(dim=0),
            "left_out": (~valid).sum(dim=0),
        })

    def compute(self) -> MetricResult:
        rows, matrices, left_out = [], {}, {}
        for layer, s in self.states.items():
            counted = s["counted"].double()
            matrix = (s["cosine_sum"] / counted).cpu().numpy()  # NaN where every sample was left out
            T = matrix.shape[0]
            off = ~np.eye(T, dtype=bool)
            rows.append({"layer": layer, "spike_cosine_mean_off_diagonal": mean_off_diagonal(matrix),
                         "similarity_left_out_max": int(s["left_out"].cpu().numpy()[off].max()) if T > 1 else 0})
            matrices[layer] = matrix
            left_out[layer] = s["left_out"].cpu().numpy()
        return MetricResult(pd.DataFrame(rows), None, {"spike_cosine": matrices, "left_out": left_out},
                            {"spike cosine": DEFINITION})
