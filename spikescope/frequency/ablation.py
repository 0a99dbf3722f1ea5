"""`frequency_ablation(model, loader)`: which 2D-DCT frequencies of each spiking layer's maps the decision uses.

Two passes over the loader. The first records every selected layer's DCT power spectrum (`Spectrum`, the spectra of
`analyze`), which fixes the energy-matched controls (`bands.conditions`). The second runs every batch once as it is
and once per layer and condition with the condition's coefficients removed from that layer's output
(`intercept.BandRemover`), and compares the predictions image by image (`result.FrequencyAblation`).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import distributed
from ..analyze import ModelAnalysis, _check_unsharded, class_labels, default_run, split_batch
from ..detect import OUTPUT_ANALOG, OUTPUT_COUNTS
from ..devices import resolve_device
from ..errors import SpikescopeError, note, warn
from ..metrics.spectrum import Spectrum
from ..record import LayerInfo
from .bands import DEFAULT_BAND_SETS, conditions, parse_band_sets
from .intercept import BandRemover
from .predictions import compare_predictions, pass_logits
from .result import FrequencyAblation


def frequency_ablation(model: nn.Module, loader: Iterable, layers: str | Sequence[str] = "all",
                       bands: str | Sequence[str] = DEFAULT_BAND_SETS, coefficients: int = 0, draws: int = 3,
                       seed: int = 0, binarize: bool = False, T: int | None = None, device: str | torch.device = "cpu",
                       run: Callable[[nn.Module, torch.Tensor], Any] | None = None, fold: str | None = None,
                       batch_first: bool | None = None, tokens: str | Sequence[int] | None = None,
                       progress: bool = False) -> FrequencyAblation:
    """Remove each frequency band from each selected spiking layer with 2D maps and measure what the predictions
    lose, image by image, against energy-matched random controls (docs/metrics.md, "Frequency ablation").

    `bands`: band sets (`bands.BAND_SETS`: axis, wedge, radial, dc; "axis,dc" or a sequence); `coefficients=K` adds
    every single coefficient of the `K x K` low-frequency block; `draws` energy-matched controls per band (random
    coefficients outside the band, off DC, removing the same share of the layer's power), from `seed`. The ablated
    maps are not binary; `binarize` thresholds them at 0.5, so the next layer sees spikes. The target is the label
    where batches carry labels, else the unablated prediction. `layers`, `T`, `run`, `fold`, `batch_first` and
    `tokens` as for `analyze`; under torchrun, every process passes the same unsharded loader and gets the whole
    result (see `analyze`).
    """
    band_sets = parse_band_sets(bands)
    if coefficients < 0 or draws < 0:
        raise SpikescopeError(f"coefficients and draws must be at least 0, got {coefficients} and {draws}")
    device = resolve_device(device)
    _check_unsharded(loader)
    model = model.to(device).eval()
    run = run or default_run
    started = time.perf_counter()
    chosen, power, T, accuracy, warnings = _spectra(model, loader, layers, T, device, run, fold, batch_first, tokens,
                                                    progress)
    planned = {info.name: conditions(power[info.name], band_sets, coefficients, draws, seed, info.name)
               for info in chosen}
    clipped = [f"{info.name} ({' x '.join(map(str, power[info.name].shape))})" for info in chosen
               if coefficients > min(power[info.name].shape)]
    if clipped:
        note(f"--coefficients {coefficients} is larger than some maps: their whole spectrum is ablated coefficient "
             f"by coefficient ({', '.join(clipped)})")
    plans = {layer: plan for layer, (plan, _) in planned.items()}
    overlapping = {layer: bands for layer, (_, bands) in planned.items() if bands}
    unmatched = [f"{layer}: {name}" for layer, plan in plans.items() for name, gain in plan.items() if gain is None]
    gains = {layer: {name: gain for name, gain in plan.items() if gain is not None} for layer, plan in plans.items()}
    if binarize and any(info.output in (OUTPUT_ANALOG, OUTPUT_COUNTS) for info in chosen):
        warn("--binarize thresholds analog values and spike counts at 0.5 too: a layer emitting counts passes on "
             "0/1 spikes under every condition but the identity")
    parts = _ablate(model, loader, chosen, gains, T, device, run, binarize, progress)
    batches = sorted((item for part in distributed.all_gather_objects(parts) for item in part), key=lambda b: b[0])
    if not batches:
        raise SpikescopeError("the loader yielded no batch")
    names = [info.name for info in chosen]
    stacked = {key: {layer: np.concatenate([b[1][key][layer] for b in batches], axis=1) for layer in names}
               for key in ("correct", "logit_change", "kl")}
    base = np.concatenate([b[2] for b in batches])
    labelled = all(b[3] for b in batches)
    info = {"images": int(len(base)), "T": T, "binarize": binarize, "draws": draws, "seed": seed,
            "band_sets": list(band_sets), "coefficients": coefficients, "accuracy": accuracy,
            "target": "label" if labelled else "prediction", "unmatched_controls": unmatched,
            "controls_overlapping_band": overlapping,
            "seconds": time.perf_counter() - started, "processes": distributed.world_size(), "warnings": warnings}
    return FrequencyAblation(names, {layer: list(gains[layer]) for layer in names}, gains, power, stacked["correct"],
                             stacked["logit_change"], stacked["kl"], base.astype(np.float64), info)


def _spectra(model: nn.Module, loader: Iterable, layers: str | Sequence[str], T: int | None, device: torch.device,
             run: Callable, fold: str | None, batch_first: bool | None, tokens: str | Sequence[int] | None,
             progress: bool) -> tuple[list[LayerInfo], dict[str, np.ndarray], int, float | None, list[str]]:
    """The selected layers with 2D maps, their DCT power `[H, W]` (summed over timesteps, over every process's
    batches), T, the unablated accuracy and the recorder's warnings."""
    analysis = ModelAnalysis(model, layers, T, device, [Spectrum()], run=run, fold=fold, batch_first=batch_first,
                             tokens=tokens)
    with distributed.together("measuring the spectra"), torch.no_grad(), analysis.recorder:
        for batch in distributed.shard(tqdm(loader, desc="spectra", unit="batch", delay=1.0,
                                            disable=not progress or not distributed.is_main())):
            analysis.step(batch)
    result = analysis.result()
    chosen = [info for info in analysis.recorder.layers if info.name in result.spectra]
    if not chosen:
        found = ", ".join(f"{i.name} ({i.geometry.label() if i.geometry else 'unknown'})"
                          for i in analysis.recorder.layers)
        raise SpikescopeError(f"no selected spiking layer has 2D maps to ablate (layers: {found}); token layers need "
                              "their patch grid (--tokens HxW)")
    power = {info.name: result.spectra[info.name].sum(axis=0) for info in chosen}
    return chosen, power, analysis.recorder.T, result.info["accuracy"], result.info["warnings"]


def _ablate(model: nn.Module, loader: Iterable, chosen: list[LayerInfo], gains: dict[str, dict[str, np.ndarray]],
            T: int, device: torch.device, run: Callable, binarize: bool, progress: bool) -> list[tuple]:
    """This process's batches: `(index, {measure: {layer: [conditions, B]}}, base correct [B], labelled)` each."""
    modules = dict(model.named_modules())
    removers = {info.name: BandRemover(modules[info.name], info.geometry, binarize) for info in chosen}
    passes = 1 + sum(len(g) for g in gains.values())
    parts = []
    try:
        with torch.no_grad(), distributed.together("ablating frequencies"):
            bar = tqdm(desc="frequency ablation", unit="pass", delay=1.0, total=_total(loader, passes),
                       disable=not progress or not distributed.is_main())
            for index, batch in distributed.shard(enumerate(loader)):
                inputs, labels = split_batch(batch)
                inputs = inputs.to(device)
                base = pass_logits(model, run, inputs, T)
                target = class_labels(labels) if labels is not None else base.argmax(1)
                measures: dict[str, dict[str, np.ndarray]] = {"correct": {}, "logit_change": {}, "kl": {}}
                for layer, plan in gains.items():
                    rows = []
                    for gain in plan.values():
                        removers[layer].set_gain(gain)
                        rows.append(compare_predictions(base, pass_logits(model, run, inputs, T), target))
                        bar.update(distributed.world_size())
                    removers[layer].set_gain(None)
                    for key in measures:
                        measures[key][layer] = np.stack([row[key] for row in rows])
                bar.update(distributed.world_size())
                parts.append((index, measures, (base.argmax(1) == target).numpy(), labels is not None))
            bar.close()
    finally:
        for remover in removers.values():
            remover.remove()
    return parts


def _total(loader: Iterable, passes: int) -> int | None:
    try:
        return len(loader) * passes  # type: ignore[arg-type]
    except TypeError:
        return None
