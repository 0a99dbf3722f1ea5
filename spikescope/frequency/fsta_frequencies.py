"""`fsta_frequencies(model, loader)`: which local DCT frequencies, and which temporal descriptors, each FSTA module's
attention draws on (docs/metrics.md, "FSTA's frequencies").

A component of an FSTA gate is ablated by zeroing what feeds it, one component at a time: a spatial basis `(u, v)`
by zeroing the first fusion convolution's weights on its input channel `u * k + v` (the convolution is linear in its
input channels, so this equals setting that frequency map to zero before the fusion, and FSTA's fused fast paths
run unchanged); a temporal descriptor by zeroing its coefficient (`alpha` for the mean term, `beta` for the max
term). The references zero every basis (`w_s = sigmoid(0) = 0.5`) or both descriptors (`w_t = 0.5`), and `identity`
zeroes nothing. Each ablation is measured on the predictions (as `frequency_ablation`) and on the attention itself:
the relative change of the gain FSTA multiplies its current by, on the same current (upstream of the ablated module
nothing changes, so its input is the unablated pass's).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Iterable, Iterator, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import distributed
from ..analyze import class_labels, default_run, split_batch
from ..devices import resolve_device
from ..errors import SpikescopeError
from ..fsta import FSTA
from ..groupstats import summarize
from .predictions import compare_predictions, pass_logits
from .result import MEASURES as PREDICTION_MEASURES
from .result import summary_columns

SPATIAL, TEMPORAL, REFERENCE = "spatial-basis", "temporal-descriptor", "reference"
DESCRIPTORS = {"mean": "alpha", "max": "beta"}  # temporal descriptor -> the coefficient that scales it
IDENTITY, SPATIAL_GATE, TEMPORAL_GATE = "identity", "spatial_gate", "temporal_gate"
MEASURES = {**PREDICTION_MEASURES, "gain_change": (0.0, np.inf)}  # per-image value -> bounds of its mean


class Component(NamedTuple):
    """One ablation of an FSTA module: its name, kind, and for a spatial basis its vertical frequency `u` (variation
    along the height) and horizontal frequency `v` (along the width)."""
    name: str
    kind: str
    u: int | None = None
    v: int | None = None


def basis_name(u: int, v: int) -> str:
    """The component that zeroes the spatial branch's DCT basis `(u, v)`."""
    return f"basis_{u}_{v}"


def fsta_modules(model: nn.Module) -> dict[str, FSTA]:
    """Every FSTA module of `model` by its module path (`block3.lif.fsta`), in model order; a one-line error if none."""
    found = {name: module for name, module in model.named_modules() if isinstance(module, FSTA)}
    if not found:
        raise SpikescopeError("the model has no FSTA module: FSTA's frequencies need a model built with FSTA "
                              "(spikescope.fsta.add_fsta, or a checkpoint trained with --fsta)")
    return found


def components(fsta: FSTA) -> list[Component]:
    """The ablations of one FSTA module, in report order: each spatial basis (row-major, u then v), each temporal
    descriptor, the whole-gate references of the branches it has, then `identity` (last, so that it also shows the
    weights were restored exactly after every other ablation)."""
    k = fsta.dct_size
    spatial, temporal = fsta.branches != "temporal", fsta.branches != "spatial"
    chosen = [Component(basis_name(u, v), SPATIAL, u, v) for u in range(k) for v in range(k)] if spatial else []
    chosen += [Component(name, TEMPORAL) for name in DESCRIPTORS] if temporal else []
    chosen += [Component(SPATIAL_GATE, REFERENCE)] if spatial else []
    chosen += [Component(TEMPORAL_GATE, REFERENCE)] if temporal else []
    return chosen + [Component(IDENTITY, REFERENCE)]


def _zeroed(fsta: FSTA, component: Component) -> list[tuple[torch.Tensor, Any]]:
    """`(parameter, index)` pairs whose zeroing ablates `component`."""
    if component.kind == SPATIAL:
        return [(fsta.fusion_layers()[0].weight, (slice(None), component.u * fsta.dct_size + component.v))]
    if component.name in DESCRIPTORS:
        return [(getattr(fsta, DESCRIPTORS[component.name]), ...)]
    if component.name == SPATIAL_GATE:
        return [(fsta.fusion_layers()[0].weight, ...)]
    if component.name == TEMPORAL_GATE:
        return [(getattr(fsta, coefficient), ...) for coefficient in DESCRIPTORS.values()]
    if component.name == IDENTITY:
        return []
    raise ValueError(f"unknown FSTA component {component.name!r}")


@contextmanager
def ablated(fsta: FSTA, component: Component) -> Iterator[None]:
    """Run the block with `component` of `fsta` ablated; the parameters are restored exactly afterwards."""
    targets = _zeroed(fsta, component)
    saved = [parameter[index].clone() for parameter, index in targets]
    try:
        with torch.no_grad():
            for parameter, index in targets:
                parameter[index] = 0
        yield
    finally:
        with torch.no_grad():
            for (parameter, index), value in zip(targets, saved):
                parameter[index] = value


def gain_change(gain: torch.Tensor, ablated_gain: torch.Tensor) -> np.ndarray:
    """Per image: `mean |ablated - gain| / mean gain` over timesteps and positions, from two gains shaped as
    `FSTA.gain` returns them (`[T or 1, B, 1, H or 1, W or 1]`)."""
    change = (ablated_gain - gain).abs().transpose(0, 1).flatten(1).mean(1)
    return (change / gain.transpose(0, 1).flatten(1).mean(1)).to("cpu", torch.float64).numpy()


def _gain(fsta: FSTA, current: torch.Tensor) -> torch.Tensor:
    """`fsta.gain` of a current as `forward` sees it (`[T, B, N]` read as N channels of 1x1 maps)."""
    return fsta.gain(current[..., None, None] if current.dim() == 3 else current)


def _keep(store: dict[str, torch.Tensor], name: str, module: nn.Module, args: tuple) -> None:
    """Forward pre-hook: keep the current an FSTA module receives."""
    store[name] = args[0].detach()


@dataclass
class FstaFrequencies:
    """Per FSTA position (module path, model order): the `components` ablated, the DCT size `k`, and the per-image
    arrays `[components, images]` `correct`, `logit_change`, `kl` (as `FrequencyAblation`) and `gain` (the relative
    change of the position's gain, `gain_change`); `base_correct` `[images]`. `info`: images, T, accuracy, target,
    seconds, passes."""

    positions: list[str]
    components: dict[str, list[Component]]
    dct_size: dict[str, int]
    correct: dict[str, np.ndarray]
    logit_change: dict[str, np.ndarray]
    kl: dict[str, np.ndarray]
    gain: dict[str, np.ndarray]
    base_correct: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def per_image(self, position: str, component: str, measure: str) -> np.ndarray:
        """One measure (`MEASURES`) of every image under one component's ablation."""
        row = [c.name for c in self.components[position]].index(component)
        if measure == "accuracy_change":
            return self.correct[position][row].astype(np.float64) - self.base_correct
        arrays = {"logit_change": self.logit_change, "kl": self.kl, "gain_change": self.gain}
        return arrays[measure][position][row].astype(np.float64)

    def effects(self) -> pd.DataFrame:
        """One row per position and component: kind, u (vertical frequency), v (horizontal frequency), and every
        measure's mean over images with its 95 % t interval."""
        rows = []
        for position in self.positions:
            for component in self.components[position]:
                row = {"position": position, "component": component.name, "kind": component.kind,
                       "u": component.u, "v": component.v}
                for measure, bounds in MEASURES.items():
                    values = self.per_image(position, component.name, measure)
                    row.update(summary_columns(f"{measure}_mean", measure, summarize(values, bounds)))
                rows.append(row)
        return pd.DataFrame(rows).astype({"u": "Int64", "v": "Int64"})

    def grid(self, position: str, measure: str) -> np.ndarray:
        """`[k, k]` mean of one measure over images per spatial basis: row u = vertical frequency (variation along
        the height), column v = horizontal frequency (along the width), both from 0 (DC) at the top left."""
        k = self.dct_size[position]
        values = np.full((k, k), np.nan)
        for component in self.components[position]:
            if component.kind == SPATIAL:
                values[component.u, component.v] = self.per_image(position, component.name, measure).mean()
        return values

    @classmethod
    def merge(cls, parts: list["FstaFrequencies"]) -> "FstaFrequencies":
        """The ablations of every part's images together (in the order given); the parts must have ablated the same
        positions and components. `seconds` adds up."""
        first = parts[0]
        if any(part.components != first.components for part in parts[1:]):
            raise ValueError("FSTA frequency results merge only when they ablated the same positions and components")
        joined = {name: {position: np.concatenate([getattr(p, name)[position] for p in parts], axis=1)
                         for position in first.positions} for name in ("correct", "logit_change", "kl", "gain")}
        base = np.concatenate([p.base_correct for p in parts])
        info = {**first.info, "images": int(len(base)),
                "accuracy": float(base.mean()) if first.info.get("target") == "label" else None,
                "seconds": sum(p.info["seconds"] for p in parts)}
        return cls(first.positions, first.components, first.dct_size, joined["correct"], joined["logit_change"],
                   joined["kl"], joined["gain"], base, info)

    def top(self, position: str, measure: str, count: int = 3, largest: bool = True) -> list[tuple[int, int, float]]:
        """The `count` bases `(u, v, mean)` with the largest (or smallest) mean of `measure` at `position`."""
        values = self.grid(position, measure)
        order = np.argsort(-values if largest else values, axis=None, kind="stable")[:count]
        return [(int(i // values.shape[1]), int(i % values.shape[1]), float(values.flat[i])) for i in order]


def fsta_frequencies(model: nn.Module, loader: Iterable, T: int | None = None, device: str | torch.device = "cpu",
                     run: Callable[[nn.Module, torch.Tensor], Any] | None = None,
                     progress: bool = False) -> FstaFrequencies:
    """Ablate each DCT basis of every FSTA module's spatial branch and each descriptor of its temporal branch, one
    at a time, and measure per image what the predictions and the module's gain lose (docs/metrics.md, "FSTA's
    frequencies"). The target is the label where batches carry labels, else the unablated prediction. `T` (default:
    the FSTA modules' own) reads `[T, B, classes]` outputs; `run(model, inputs)` as for `analyze`. Under torchrun
    every process passes the same unsharded loader, ablates its share of the batches and gets the whole result."""
    device = resolve_device(device)
    model = model.to(device).eval()
    modules = fsta_modules(model)
    T = T or next(iter(modules.values())).T
    run = run or default_run
    plan = {name: components(module) for name, module in modules.items()}
    started = time.perf_counter()
    passes = 1 + sum(len(chosen) for chosen in plan.values())
    with distributed.together("ablating FSTA's components"):
        mine = [(index, _batch(model, modules, plan, batch, T, device, run))
                for index, batch in distributed.shard(enumerate(tqdm(
                    loader, desc="FSTA frequencies", unit="batch", delay=1.0,
                    disable=not progress or not distributed.is_main())))]
    batches = [part for _, part in sorted((item for items in distributed.all_gather_objects(mine) for item in items),
                                          key=lambda item: item[0])]
    if not batches:
        raise SpikescopeError("the loader yielded no batch")
    stacked = {key: {name: np.concatenate([b[0][key][name] for b in batches], axis=1) for name in modules}
               for key in ("correct", "logit_change", "kl", "gain_change")}
    base = np.concatenate([b[1] for b in batches]).astype(np.float64)
    labelled = all(b[2] for b in batches)
    info = {"images": int(len(base)), "T": T, "accuracy": float(base.mean()) if labelled else None,
            "target": "label" if labelled else "prediction",
            "passes_per_batch": passes, "seconds": time.perf_counter() - started,
            "processes": distributed.world_size()}
    return FstaFrequencies(list(modules), plan, {name: module.dct_size for name, module in modules.items()},
                           stacked["correct"], stacked["logit_change"], stacked["kl"], stacked["gain_change"], base,
                           info)


def _batch(model: nn.Module, modules: dict[str, FSTA], plan: dict[str, list[Component]], batch: Any, T: int,
           device: torch.device, run: Callable) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray, bool]:
    """One batch: `({measure: {position: [components, B]}}, base correct [B], labelled)`."""
    inputs, labels = split_batch(batch)
    inputs = inputs.to(device)
    currents: dict[str, torch.Tensor] = {}
    hooks = [module.register_forward_pre_hook(partial(_keep, currents, name)) for name, module in modules.items()]
    try:
        with torch.no_grad():
            base = pass_logits(model, run, inputs, T)
    finally:
        for hook in hooks:
            hook.remove()
    target = class_labels(labels) if labels is not None else base.argmax(1)
    measures: dict[str, dict[str, np.ndarray]] = {"correct": {}, "logit_change": {}, "kl": {}, "gain_change": {}}
    with torch.no_grad():
        for name, module in modules.items():
            gain = _gain(module, currents[name])
            rows = []
            for component in plan[name]:
                with ablated(module, component):
                    row = compare_predictions(base, pass_logits(model, run, inputs, T), target)
                    row["gain_change"] = gain_change(gain, _gain(module, currents[name]))
                rows.append(row)
            for key in measures:
                measures[key][name] = np.stack([row[key] for row in rows])
    return measures, (base.argmax(1) == target).numpy(), labels is not None
