"""What a frequency ablation measured: per layer, condition and image, and its summaries with intervals.

Every per-image value compares the ablated pass with the unablated pass of the same image: `correct` (the ablated
prediction is the target class), `logit_change` (the target's logit, ablated minus unablated) and `kl` (the
Kullback-Leibler divergence of the ablated from the unablated class probabilities, in nats).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..groupstats import summarize
from .bands import EVERYTHING, IDENTITY, control_of, removed_power

MEASURES = {  # per-image value -> (summary column, bounds of its mean)
    "accuracy_change": (-1.0, 1.0),
    "logit_change": (-math.inf, math.inf),
    "kl": (0.0, math.inf),
}


def condition_kind(condition: str) -> str:
    """identity, all, band, coefficient or control."""
    if condition in (IDENTITY, EVERYTHING):
        return condition
    if control_of(condition) is not None:
        return "control"
    return "coefficient" if condition.startswith("coef_") else "band"


@dataclass
class FrequencyAblation:
    """Per layer (depth order): the `conditions` run, each one's `gains` (`[H, W]`, see `bands`) and the share of the
    layer's spectral power it removes (`removed_share`), the layer's DCT power `power` (`[H, W]`, summed over
    timesteps), and the per-image arrays `[conditions, images]` `correct`, `logit_change` and `kl`; `base_correct`
    `[images]` says whether the unablated pass predicted the target. `info`: images, T, binarize, draws, seed,
    accuracy, seconds, target ("label" or "prediction"), unmatched controls, warnings. `fsta`: what each FSTA module's
    attention draws on (`spikescope frequency --fsta`), or None."""

    layers: list[str]
    conditions: dict[str, list[str]]
    gains: dict[str, dict[str, np.ndarray]]
    power: dict[str, np.ndarray]
    correct: dict[str, np.ndarray]
    logit_change: dict[str, np.ndarray]
    kl: dict[str, np.ndarray]
    base_correct: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    fsta: Any = None  # a `fsta_frequencies.FstaFrequencies` of the same images, when asked for

    def removed_share(self, layer: str, condition: str) -> float:
        """The share of the layer's spectral power the condition removes."""
        total = float(self.power[layer].sum())
        return removed_power(self.gains[layer][condition], self.power[layer]) / total if total else math.nan

    def per_image(self, layer: str, condition: str, measure: str) -> np.ndarray:
        """One measure (`MEASURES`) of every image under one condition."""
        row = self.conditions[layer].index(condition)
        if measure == "accuracy_change":
            return self.correct[layer][row].astype(np.float64) - self.base_correct
        return {"logit_change": self.logit_change, "kl": self.kl}[measure][layer][row].astype(np.float64)

    def effects(self) -> pd.DataFrame:
        """One row per layer and condition: kind, the band (a control's band), the removed power share and every
        measure's mean over images with its 95 % t interval."""
        rows = []
        for layer in self.layers:
            for condition in self.conditions[layer]:
                row = {"layer": layer, "condition": condition, "kind": condition_kind(condition),
                       "band": control_of(condition) or condition,
                       "removed_power_share": self.removed_share(layer, condition)}
                for measure, bounds in MEASURES.items():
                    row.update(summary_columns(f"{measure}_mean", measure,
                                               summarize(self.per_image(layer, condition, measure), bounds)))
                rows.append(row)
        return pd.DataFrame(rows)

    def against_controls(self) -> pd.DataFrame:
        """One row per layer and removed band (or coefficient) that has controls: the band's effect, its controls'
        mean effect and the SD of the draws' effects (`_control_sd`: how much the controls themselves vary, which the
        interval over images does not include), and the specific effect (band minus the mean of its controls, image by
        image) with its 95 % t interval over images, for every measure."""
        rows = []
        for layer in self.layers:
            controls: dict[str, list[str]] = {}
            for condition in self.conditions[layer]:
                band = control_of(condition)
                if band is not None:
                    controls.setdefault(band, []).append(condition)
            for band, draws in controls.items():
                row = {"layer": layer, "band": band, "kind": condition_kind(band), "draws": len(draws),
                       "removed_power_share": self.removed_share(layer, band)}
                for measure, bounds in MEASURES.items():
                    own = self.per_image(layer, band, measure)
                    each = np.array([self.per_image(layer, draw, measure) for draw in draws])
                    matched = each.mean(axis=0)
                    row[measure] = float(own.mean())
                    row[f"{measure}_control"] = float(matched.mean())
                    row[f"{measure}_control_sd"] = float(each.mean(axis=1).std(ddof=1)) if len(draws) > 1 else math.nan
                    row.update(summary_columns(f"{measure}_specific", f"{measure}_specific", summarize(own - matched)))
                rows.append(row)
        return pd.DataFrame(rows)

    @classmethod
    def merge(cls, parts: Sequence["FrequencyAblation"]) -> "FrequencyAblation":
        """The ablation of every part's images together (in the order given): the parts must have run the same
        layers and conditions with the same gains (one spectrum, as `frequency_ablation` shares across processes)."""
        first = parts[0]
        for part in parts[1:]:
            same = part.layers == first.layers and part.conditions == first.conditions and all(
                np.array_equal(part.gains[layer][c], first.gains[layer][c])
                for layer in first.layers for c in first.conditions[layer])
            if not same:
                raise ValueError("ablations merge only when they ran the same layers and conditions with the same "
                                 "gains")
        joined = {name: {layer: np.concatenate([getattr(p, name)[layer] for p in parts], axis=1)
                         for layer in first.layers} for name in ("correct", "logit_change", "kl")}
        base = np.concatenate([p.base_correct for p in parts])
        labelled = first.info.get("target") == "label"
        info = {**first.info, "images": int(len(base)), "accuracy": float(base.mean()) if labelled else None}
        return cls(first.layers, first.conditions, first.gains, first.power, joined["correct"],
                   joined["logit_change"], joined["kl"], base, info)


def summary_columns(mean: str, prefix: str, summary: dict[str, float]) -> dict[str, float]:
    """A summary's mean (column `mean`), interval (`<prefix>_ci_low`, `_ci_high`) and count (`images`)."""
    return {mean: summary["mean"], f"{prefix}_ci_low": summary["ci_low"], f"{prefix}_ci_high": summary["ci_high"],
            "images": summary["n"]}
