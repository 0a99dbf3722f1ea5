"""Several models run batch by batch on the same images, for the linear CKA between their layers
(docs/metrics.md, "CKA").

Each model runs under its own SpikeRecorder, which hands each layer's spikes (in any time layout)
over time-first; only the current batch's time-averaged channel features are kept, and they feed a
`CrossCKA` per model against the reference model.
"""
from __future__ import annotations

from contextlib import ExitStack
from typing import Iterable, Sequence

import torch
from torch import nn
from tqdm import tqdm

from . import distributed
from .analyze import split_batch
from .detect import reset_neuron_states
from .devices import resolve_device
from .errors import warn
from .metrics.cka import MAX_FEATURES, CrossCKA, features
from .record import SpikeRecorder


class _LatestFeatures:
    """Fed by a SpikeRecorder: every layer's features (`metrics.cka.features`, averaged over time) of the batch
    just run, `[B, p]`."""

    inputs = "spikes"

    def __init__(self) -> None:
        self.latest: dict[str, torch.Tensor] = {}
        self.too_large: set[str] = set()

    def update(self, layer: str, spikes: torch.Tensor) -> None:
        self.latest[layer] = features(spikes).mean(dim=0)
        if self.latest[layer].shape[1] > MAX_FEATURES and layer not in self.too_large:
            self.too_large.add(layer)
            warn(f"layer {layer} has {self.latest[layer].shape[1]} features, more than CKA across models keeps "
                 f"({MAX_FEATURES}): left out")


def cross_model_cka(models: dict[str, nn.Module], loaders: dict[str, Iterable], T: dict[str, int | None],
                    layers: str | Sequence[str] = "all", device: str | torch.device = "cpu",
                    progress: bool = False) -> dict[str, CrossCKA]:
    """Linear CKA between every layer of the first model of `models` (the reference) and every layer of each of
    the others; returns a `CrossCKA` per other model.

    `loaders[label]` yields the batches model `label` sees: the same images in the same order for every
    model (each normalised as that model was trained). `T[label]` is each model's number of timesteps
    (None: found by the recorder); `layers` selects each model's layers as in `analyze`. Layers with more
    than `MAX_FEATURES` features are named and left out. In a process group the batches are shared out as
    `analyze` shares them, and the sums are added over the processes.
    """
    device = resolve_device(device)
    reference, *others = models
    kept = {label: _LatestFeatures() for label in models}
    cross = {label: CrossCKA() for label in others}
    with ExitStack() as stack, distributed.together("comparing the models' layers"), torch.no_grad():
        recorders = {label: stack.enter_context(SpikeRecorder(model.to(device).eval(), layers=layers,
                                                              metrics=[kept[label]], T=T.get(label)))
                     for label, model in models.items()}
        batches = tqdm(zip(*(loaders[label] for label in models)), desc="CKA across models", unit="batch",
                       delay=1.0, total=len(loaders[reference]) if hasattr(loaders[reference], "__len__") else None,
                       disable=not progress or not distributed.is_main())
        for together in distributed.shard(batches):
            for (label, model), batch in zip(models.items(), together):
                reset_neuron_states(model)
                model(split_batch(batch)[0].to(device))
            in_order = {label: {info.name: kept[label].latest[info.name] for info in recorders[label].layers
                                if kept[label].latest[info.name].shape[1] <= MAX_FEATURES}
                        for label in models}
            for label in others:
                cross[label].update(in_order[reference], in_order[label])
    return {label: result.all_reduce() for label, result in cross.items()}
