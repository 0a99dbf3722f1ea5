"""Several models analysed batch by batch on the same images, each under its own recorder, with the linear CKA
between their layers measured on the way (docs/metrics.md, "CKA").

Every model runs once: its `ModelAnalysis` feeds all of its metrics, and a `_LatestFeatures` tap beside them
keeps the current batch's time-averaged channel features of every layer, which feed a `CrossCKA` per model
against the reference (the first model).
"""
from __future__ import annotations

from contextlib import ExitStack
from typing import Iterable

import pandas as pd
import torch
from tqdm import tqdm

from . import distributed
from .analyze import AnalysisResult, ModelAnalysis, split_batch
from .errors import SpikescopeError, describe, warn
from .metrics.base import Metric, MetricResult
from .metrics.cka import MAX_FEATURES, CrossCKA, features


class _LatestFeatures(Metric):
    """A tap, not a statistic: every layer's features (`metrics.cka.features`, averaged over time) of the batch just
    run, `[B, p]`, for the layers with at most `MAX_FEATURES` features (the others are named once and left out).
    It keeps no state across batches, so it merges to nothing and reports nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.latest: dict[str, torch.Tensor] = {}
        self.too_large: set[str] = set()

    def update(self, layer: str, spikes: torch.Tensor) -> None:
        count = spikes.shape[2]  # features() keeps dimension 2 (channels, or a vector's values)
        if count <= MAX_FEATURES:
            self.latest[layer] = features(spikes).mean(dim=0)
        elif layer not in self.too_large:
            self.too_large.add(layer)
            warn(f"layer {layer} has {count} features, more than CKA across models keeps ({MAX_FEATURES}): left out")

    def compute(self) -> MetricResult:
        return MetricResult(pd.DataFrame())


def analyze_together(analyses: dict[str, ModelAnalysis], loaders: dict[str, Iterable],
                     progress: bool = False) -> tuple[dict[str, AnalysisResult], dict[str, CrossCKA]]:
    """Run every model of `analyses` once over its loader, in lockstep, and return each model's `AnalysisResult`
    (exactly what `analyze` would return for it alone) and, for every model but the first (the reference), a
    `CrossCKA` of its layers against the reference's.

    `loaders[label]` yields the batches model `label` sees: the same images in the same order for every model
    (each normalised as that model was trained). Layers with more than `MAX_FEATURES` features are named and
    left out of the CKA. A model that cannot run on its batches (a shape or dtype mismatch) is a one-line error
    that names it. In a process group the batches are shared out as `analyze` shares them, and every
    state is reduced over the processes.
    """
    reference, *others = analyses
    taps = {label: _LatestFeatures() for label in analyses}
    for label, analysis in analyses.items():
        analysis.recorder.metrics.append(taps[label])
    cross = {label: CrossCKA() for label in others}
    with ExitStack() as stack, distributed.together("analyzing the models' batches"), torch.no_grad():
        for analysis in analyses.values():
            stack.enter_context(analysis.recorder)
        first = loaders[reference]
        batches = tqdm(zip(*(loaders[label] for label in analyses)), desc=f"analyze {len(analyses)} models",
                       unit="batch", delay=1.0, total=len(first) if hasattr(first, "__len__") else None,
                       disable=not progress or not distributed.is_main())
        for together in distributed.shard(batches):
            for (label, analysis), batch in zip(analyses.items(), together):
                try:
                    analysis.step(batch)
                except RuntimeError as error:  # shape and dtype mismatches between a user's model and the data
                    shape = list(split_batch(batch)[0].shape[1:])
                    raise SpikescopeError(f"{label} cannot run on images of shape {shape} "
                                          f"({describe(error)})") from None
            kept = {label: {info.name: taps[label].latest[info.name] for info in analyses[label].recorder.layers
                            if info.name in taps[label].latest} for label in analyses}
            for label in others:
                cross[label].update(kept[reference], kept[label])
    return ({label: analysis.result() for label, analysis in analyses.items()},
            {label: result.all_reduce() for label, result in cross.items()})
