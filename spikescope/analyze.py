"""`analyze(model, loader)`: run a network over data under a SpikeRecorder and collect every result."""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from . import distributed
from .detect import OUTPUT_ANALOG, first_tensor, reset_neuron_states
from .devices import resolve_device
from .metrics.base import Metric
from .neurobench import NeuroBench
from .errors import SpikescopeError
from .metrics.capture import SpikeCapture
from .energy.models import TERMS
from .metrics.energy import Energy
from .record import OUTPUT_ORDER, LayerInfo, SpikeRecorder, default_metrics
from .timelayout import batch_size_of
from .tokens import TOKENS, head_rates


TOKEN_COLUMNS = ("layer", "token", "row", "column", "firing_rate", "silent_fraction")
HEAD_COLUMNS = ("layer", "part", "head", "firing_rate")


@dataclass
class AnalysisResult:
    """Everything `analyze` measured.

    `layers`: one row per spiking layer (depth order; `output` says spikes, spike counts or analog,
    and analog layers have no firing rate); `timesteps`: one row per layer and timestep; `channels`:
    one row per layer and channel (firing rate, silent share; channels are features, D or C, in every layout);
    `tokens`: one row per token layer and token (firing rate, silent share, the token's row and column on the patch
    grid); `heads`: one row per attention layer, part (q, k or v of a Q/K/V token layer, fused or not; empty for
    head-split layers) and head: its firing rate; `energy`: one row per costed operation (`energy.operators`),
    per image; `spectra[layer]`: DCT power `[T, H, W]` (layers with 2D maps); `similarity[layer]`:
    `T x T` arrays "spike_cosine", "left_out", "spectral_cosine", "spectral_cosine_ac";
    `captured[layer]`: raw spikes `[T, K, ...]` of the first K samples (if asked for);
    `definitions`: each metric's formula; `sam[layer]`: mean spike activation map `[T, H, W]` (with the
    `SpikeActivationMap` metric); `membrane[layer]`: membrane-potential histogram counts `[T, bins]`
    (with `membrane=True`; bins in `metrics.membrane.COLUMNS`); `attribution`: attributions of example
    images (if asked for); `info`: samples, T, accuracy, `runtime_s` (the seconds this model's batches took
    under the recorder, data loading excluded: the same whether other models ran beside it), warnings, the
    operations on spikes or weights that could not be costed (`uncosted`: module, type, operator), and the
    number of `processes` with the
    `samples_per_process` each analysed.
    """

    layers: pd.DataFrame
    timesteps: pd.DataFrame
    channels: pd.DataFrame
    energy: pd.DataFrame
    spectra: dict[str, np.ndarray]
    similarity: dict[str, dict[str, np.ndarray]]
    captured: dict[str, np.ndarray]
    definitions: dict[str, str]
    info: dict[str, Any] = field(default_factory=dict)
    sam: dict[str, np.ndarray] = field(default_factory=dict)
    membrane: dict[str, np.ndarray] = field(default_factory=dict)
    attribution: Any = None  # an `attribution.Attribution` of example images, when asked for
    tokens: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TOKEN_COLUMNS))
    heads: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=HEAD_COLUMNS))
    neurobench: dict[str, Any] = field(default_factory=dict)  # NeuroBench's metrics by its names (`neurobench`)

    def energy_totals(self) -> dict[str, float]:
        """Per-image totals over all costed rows: SOPs (exact and paper-style), MACs and energy in pJ under
        spikescope's convention, the paper-style fr x FLOPs and the dense reading of spike sums; the energy model's
        terms; the ANN twin's (`ann_*`) and `snn_ann_ratio`, the network's energy over its twin's."""
        totals = {c: float(self.energy[c].sum()) if c in self.energy and len(self.energy) else 0.0
                  for c in ENERGY_TOTALS}
        twin = totals["ann_energy_pj_per_image"]
        totals["snn_ann_ratio"] = totals["energy_pj_per_image"] / twin if twin else float("nan")
        return totals

    def energy_by_part(self) -> pd.DataFrame:
        """The totals per part of the network (stem, attention, MLP, conv, residual, head, FSTA, neurons, other),
        with each part's share of the energy under each reading."""
        columns = [c for c in ENERGY_TOTALS if c in self.energy]
        parts = self.energy.groupby("part", sort=False)[columns].sum().reset_index() if len(self.energy) else (
            pd.DataFrame(columns=["part", *columns]))
        for energy in ("energy_pj_per_image", "energy_pj_approx_per_image", "energy_pj_dense_reading_per_image"):
            total = parts[energy].sum()
            parts[energy.replace("energy_pj", "share").replace("_per_image", "")] = (
                parts[energy] / total if total else float("nan"))
        return parts


ENERGY_TOTALS = ("sops_per_image", "sops_approx_per_image", "macs_per_image", "energy_pj_per_image",
                 "energy_pj_approx_per_image", "sops_dense_reading_per_image", "macs_dense_reading_per_image",
                 "energy_pj_dense_reading_per_image", *(f"energy_{term}_pj_per_image" for term in TERMS),
                 "ann_macs_per_image", "ann_energy_pj_per_image",
                 *(f"ann_energy_{term}_pj_per_image" for term in TERMS))


def default_run(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """One forward pass: `model(inputs)`."""
    return model(inputs)


def repeated_input(T: int) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    """A `run` for multi-step models that expect `[T, B, ...]`: static inputs are repeated T times.

        spikescope.analyze(spikingjelly_net, loader, run=spikescope.repeated_input(4))
    """
    return lambda model, inputs: model(inputs.unsqueeze(0).expand(T, *inputs.shape).contiguous())


INPUT_KEYS = ("input", "inputs", "image", "images", "x", "data")
LABEL_KEYS = ("label", "labels", "target", "targets", "y")
BATCH_FORMS = (f"a tensor of inputs, a tuple (inputs,) or (inputs, labels), or a dict with one of the keys "
               f"{', '.join(INPUT_KEYS)} (and optionally {', '.join(LABEL_KEYS)})")


def split_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`(inputs, labels or None)` from any batch a DataLoader yields; a one-line error for anything else."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)) and 1 <= len(batch) <= 2 and isinstance(batch[0], torch.Tensor):
        labels = batch[1] if len(batch) == 2 else None
        if labels is not None and not isinstance(labels, torch.Tensor):
            raise SpikescopeError(f"each batch must be {BATCH_FORMS}; its labels are a {type(labels).__name__}")
        return batch[0], labels
    if isinstance(batch, dict):
        inputs = next((batch[k] for k in INPUT_KEYS if isinstance(batch.get(k), torch.Tensor)), None)
        labels = next((batch[k] for k in LABEL_KEYS if isinstance(batch.get(k), torch.Tensor)), None)
        if inputs is not None:
            return inputs, labels
        raise SpikescopeError(f"each batch must be {BATCH_FORMS}; got a dict with keys {', '.join(map(str, batch))}")
    shape = f" of {len(batch)} items" if isinstance(batch, (tuple, list)) else ""
    raise SpikescopeError(f"each batch must be {BATCH_FORMS}; got a {type(batch).__name__}{shape}")


def batch_logits(output: Any, T: int | None, batch: int) -> torch.Tensor | None:
    """`[B, classes]` logits from a model output: `[T, B, classes]` and `[B, T, classes]` outputs are averaged
    over time; None for any other shape."""
    output = first_tensor(output)
    if output is not None and output.dim() == 3 and T is not None and T != batch:
        if output.shape[:2] == (T, batch):
            output = output.mean(dim=0)
        elif output.shape[:2] == (batch, T):
            output = output.mean(dim=1)
    return output if output is not None and output.dim() == 2 and output.shape[0] == batch else None


def class_labels(labels: torch.Tensor) -> torch.Tensor:
    """`[B]` integer class labels from `[B]` or `[B, 1]` whole numbers, or `[B, classes]` one-hot / soft labels
    (their argmax), on the CPU; a one-line error for anything else."""
    if labels.dim() == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    elif labels.dim() == 2:
        labels = labels.argmax(dim=1)
    if labels.dim() != 1 or labels.is_complex() or (labels.is_floating_point() and not torch.equal(labels,
                                                                                                  labels.trunc())):
        raise SpikescopeError(f"labels must be class indices [B] (or [B, 1], or one-hot [B, classes]); got a "
                              f"{labels.dtype} tensor of shape {tuple(labels.shape)}")
    return labels.detach().to("cpu", torch.int64)


def analyze(model: nn.Module, loader: Iterable, layers: str | Sequence[str] = "all", T: int | None = None,
            device: str | torch.device = "cpu", energy: str = "fp32", capture: int = 0,
            metrics: Sequence[Metric] | None = None, run: Callable[[nn.Module, torch.Tensor], Any] | None = None,
            fold: str | None = None, batch_first: bool | None = None, membrane: bool = False,
            progress: bool = False, tokens: str | Sequence[int] | None = None,
            neurobench: bool = False) -> AnalysisResult:
    """Run `model` over `loader` and measure its spiking layers.

    Batches may be input tensors, `(inputs,)` or `(inputs, labels)` tuples, or dicts with an input key
    (see `split_batch`). `run(model, inputs)` performs one forward pass (default `model(inputs)`; see
    `repeated_input` for multi-step models that take `[T, B, ...]`); neuron states of SpikingJelly,
    snnTorch and sinabs models are reset before every batch. `fold` and `batch_first` tell
    `SpikeRecorder` how neurons that no framework declares lay out time. `membrane` also measures where
    the neurons' membrane potentials sit relative to their thresholds (`result.membrane`; see
    `SpikeRecorder`). `tokens=(h, w)` declares the patch grid of a transformer's token layers (see
    `spikescope.tokens`; inferred from the model when not given). Accuracy is reported when
    batches carry labels and the output is `[B, classes]` logits (or `[T, B, classes]` /
    `[B, T, classes]`, averaged over time); see docs/metrics.md, "Accuracy". `neurobench` also measures
    NeuroBench's metrics in the same pass (`result.neurobench`; `MembraneUpdates` needs `membrane`; see
    `spikescope.neurobench`): opt-in, as counting every Linear and Conv call's inputs adds 10-20 % to the bundled
    CNNs' analysis on a CPU.

    In a torch.distributed process group (e.g. under torchrun) every process passes the same model and
    the same unsharded loader, yielding the same batches in the same order: process r analyses batches
    r, r + N, r + 2N, ... Metric states (by their declared reductions), accuracy counts, warnings,
    uncosted modules and captured spikes are then reduced, so every process returns what one process
    analysing every batch would (counts exactly, float sums to float64 rounding; `captured` holds the
    first K samples in the loader's order). Every process needs at least one batch.
    """
    device = resolve_device(device)
    _check_unsharded(loader)
    analysis = ModelAnalysis(model.to(device).eval(), layers, T, device, metrics if metrics is not None else
                             default_metrics(energy), capture, run, fold, batch_first, membrane, tokens, neurobench)
    with distributed.together("analyzing its batches"), torch.no_grad(), analysis.recorder, (
            analysis.neurobench or nullcontext()):
        batches = tqdm(loader, desc="analyze", unit="batch", disable=not progress or not distributed.is_main(),
                       delay=1.0)
        for batch in distributed.shard(batches):
            analysis.step(batch)
    return analysis.result()


class ModelAnalysis:
    """One model's side of an analysis, batch by batch: its recorder (to be entered by the caller), its forward
    pass and its accuracy tally. `analyze` drives one; `lockstep.analyze_together` drives several on the same
    batches. Arguments as for `analyze`; `model` is already on `device` and in eval mode."""

    def __init__(self, model: nn.Module, layers: str | Sequence[str], T: int | None, device: torch.device,
                 metrics: Sequence[Metric], capture: int = 0,
                 run: Callable[[nn.Module, torch.Tensor], Any] | None = None, fold: str | None = None,
                 batch_first: bool | None = None, membrane: bool = False,
                 tokens: str | Sequence[int] | None = None, neurobench: bool = False) -> None:
        self.model, self.device, self.run = model, device, run or default_run
        self.neurobench = NeuroBench(model, membrane) if neurobench else None  # its hooks: entered by `analyze`
        metrics = self.neurobench.recorded(list(metrics)) if self.neurobench else metrics
        self.recorder = SpikeRecorder(model, layers=layers, metrics=list(metrics), T=T, capture=capture, fold=fold,
                                      batch_first=batch_first, membrane=membrane, tokens=tokens)
        self.tally = {"batches": 0, "samples": 0, "correct": 0, "labelled": 0}
        self.seconds = 0.0  # spent in `step`: this model's own runtime, however many models run beside it

    def step(self, batch: Any) -> None:
        """Run one batch through the model under the recorder (neuron states reset first) and tally accuracy."""
        started = time.perf_counter()
        inputs, labels = split_batch(batch)
        labels = class_labels(labels) if labels is not None else None
        self.tally["batches"] += 1
        reset_neuron_states(self.model)
        output = self.run(self.model, inputs.to(self.device))
        self.tally["samples"] += batch_size_of(inputs, self.recorder.T or 1)
        if labels is not None:
            logits = batch_logits(output, self.recorder.T, len(labels))
            if logits is None:
                shape = tuple(first_tensor(output).shape) if first_tensor(output) is not None else "no tensor"
                self.recorder.add_warning(f"the batches carry labels, but the model's output ({shape}) is not "
                                          "[B, classes] logits (or [T, B, classes]): no accuracy is reported")
            else:
                self.tally["correct"] += int((logits.argmax(1).cpu() == labels).sum())
                self.tally["labelled"] += len(labels)
        self.seconds += time.perf_counter() - started

    def result(self) -> AnalysisResult:
        """What the model's batches measured, over every process of a process group (see `analyze`)."""
        tallies = _combine_processes(self.recorder, self.tally)
        correct, labelled = (sum(t[key] for t in tallies) for key in ("correct", "labelled"))
        result = _assemble(self.recorder, self.seconds, correct / labelled if labelled else None,
                           [t["samples"] for t in tallies])
        if self.neurobench is not None:
            result.neurobench = self.neurobench.result(self.recorder.add_warning)
            result.info["warnings"] = list(self.recorder.warnings)
        return result


def _check_unsharded(loader: Iterable) -> None:
    """In a process group, refuse a loader that a DistributedSampler already shards (it would be sharded twice)."""
    samplers = (getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None))
    if distributed.active() and any(isinstance(sampler, DistributedSampler) for sampler in samplers):
        raise SpikescopeError("analyze shares the batches out among the processes itself: give every process the "
                              "same loader without a DistributedSampler")


def _combine_processes(recorder: SpikeRecorder, tally: dict[str, int]) -> list[dict[str, int]]:
    """Fold what every process recorded into this process's `recorder` (see `analyze`); returns each process's
    `tally` in rank order. Refuses a run in which some process had no batch."""
    tallies = distributed.all_gather_objects({
        **tally, "warnings": recorder.warnings, "uncosted": recorder.uncosted, "T": recorder.T,
        "layouts": [(info.name, info.layout and info.layout.value) for info in recorder.layers],
        "outputs": {info.name: info.output for info in recorder.layers},
        "captured": _captured_batches(recorder) if distributed.active() else {}})
    counts = [t["batches"] for t in tallies]
    if sum(counts) == 0:
        raise SpikescopeError("the data loader yielded no batch")
    if min(counts) == 0:
        raise SpikescopeError(f"the data loader yielded fewer batches ({sum(counts)}) than there are processes "
                              f"({len(counts)}), and every process needs one: lower --batch-size or the number of "
                              "processes")
    if len(tallies) == 1:
        return tallies
    differing = next((process for process, t in enumerate(tallies)
                      if (t["T"], t["layouts"]) != (tallies[0]["T"], tallies[0]["layouts"])), None)
    if differing is not None:
        raise SpikescopeError(f"process {differing} found other spiking layers (or time layouts, or T) on its first "
                              "batch than process 0: name the layers (--layers, layers=[...]) and T (--T)")
    for metric in recorder.metrics:
        metric.all_reduce()
    for other in tallies:
        for message in other["warnings"]:
            recorder.add_warning(message)
        recorder.uncosted += [tuple(key) for key in other["uncosted"] if tuple(key) not in recorder.uncosted]
    for info in recorder.layers:  # a layer's kind is the worst any process saw
        info.output = max((t["outputs"][info.name] for t in tallies), key=OUTPUT_ORDER.index)
    if recorder.capture is not None:
        recorder.capture = _interleaved([t["captured"] for t in tallies], recorder.capture.samples)
    return tallies


def _captured_batches(recorder: SpikeRecorder) -> dict[str, list[np.ndarray]]:
    """Each layer's captured spikes `[T, k, ...]`, split into the batches they came from (one part per batch)."""
    capture = recorder.capture
    if capture is None:
        return {}
    return {layer: np.split(capture.spikes(layer), np.cumsum([shape[1] for _, shape, _ in capture.parts[layer]])[:-1],
                            axis=1) for layer in capture.layers()}


def _interleaved(per_process: list[dict[str, list[np.ndarray]]], samples: int) -> SpikeCapture:
    """The first `samples` captured samples in the loader's order: batch j of process r is batch j * N + r."""
    capture = SpikeCapture(samples)
    for layer in per_process[0]:
        parts = [captured.get(layer, []) for captured in per_process]
        for j in range(max(map(len, parts))):
            for own in parts:
                if j < len(own):
                    capture.update(layer, torch.from_numpy(own[j]))
    return capture


SIMILARITY_ARRAYS = ("spike_cosine", "left_out", "spectral_cosine", "spectral_cosine_ac", "cka")


def _assemble(recorder: SpikeRecorder, runtime: float, accuracy: float | None,
              samples_per_process: list[int]) -> AnalysisResult:
    results = recorder.compute()
    layers = pd.DataFrame([{"layer": i.name, "depth": d, "type": i.type, "found_by": i.found_by,
                            "layout": i.layout.value, "geometry": i.geometry.label(), "output": i.output}
                           for d, i in enumerate(recorder.layers)])
    timesteps: pd.DataFrame | None = None
    arrays: dict[str, dict[str, np.ndarray]] = {}
    for name, result in results.items():
        arrays.update(result.arrays)
        if name != "Energy" and len(result.layers.columns):  # energy rows are operations, kept apart
            layers = layers.merge(result.layers, on="layer", how="left")
        if result.timesteps is not None and len(result.timesteps.columns):
            timesteps = result.timesteps if timesteps is None else timesteps.merge(result.timesteps, on=["layer", "t"],
                                                                                  how="left")
    timesteps = pd.DataFrame(columns=["layer", "t"]) if timesteps is None else timesteps
    analog = [i.name for i in recorder.layers if i.output == OUTPUT_ANALOG]
    _blank(layers, analog, SPIKE_COUNT_COLUMNS)
    _blank(timesteps, analog, SPIKE_COUNT_COLUMNS)
    similarity: dict[str, dict[str, np.ndarray]] = {}
    for key in SIMILARITY_ARRAYS:
        for layer, matrix in arrays.get(key, {}).items():
            similarity.setdefault(layer, {})[key] = matrix
    info = {"samples": int(layers["samples"].max()) if "samples" in layers and len(layers) else 0,
            "T": recorder.T, "accuracy": accuracy, "runtime_s": runtime, "warnings": list(recorder.warnings),
            "processes": len(samples_per_process), "samples_per_process": samples_per_process,
            "uncosted": [{"module": name, "type": type(recorder.model.get_submodule(name)).__name__,
                          "operator": operator} for name, operator in recorder.uncosted]}
    energy_metric = next((m for m in recorder.metrics if isinstance(m, Energy)), None)
    if energy_metric is not None:
        info["energy_model"] = energy_metric.model.name
        info["energy_model_description"] = energy_metric.model.describe()
        info["energy_pj"] = {"mac": energy_metric.model.e_mac, "ac": energy_metric.model.e_add}
    capture = recorder.capture
    return AnalysisResult(
        layers=layers, timesteps=timesteps, channels=_channels(arrays, analog),
        tokens=_tokens(arrays, recorder.layers, analog), heads=_heads(arrays, recorder.layers, analog),
        energy=results["Energy"].layers if "Energy" in results else pd.DataFrame(),
        spectra=arrays.get("spectrum", {}), similarity=similarity,
        captured={layer: capture.spikes(layer) for layer in capture.layers() if layer not in analog} if capture else {},
        definitions={k: v for r in results.values() for k, v in r.definitions.items()}, info=info,
        sam={layer: maps for layer, maps in arrays.get("sam", {}).items() if layer not in analog},
        membrane=arrays.get("membrane_histogram", {}))


SPIKE_COUNT_COLUMNS = ("spikes", "firing_rate", "silent_fraction", "sam_mean")  # meaningless for analog values


def _blank(frame: pd.DataFrame, layers: list[str], columns: Sequence[str]) -> None:
    """Set `columns` to NaN in the rows of `layers` (analog layers have no spikes to count)."""
    present = [c for c in columns if c in frame]
    if layers and present:
        frame.loc[frame["layer"].isin(layers), present] = float("nan")


def _channels(arrays: dict[str, dict[str, np.ndarray]], analog: list[str]) -> pd.DataFrame:
    """One row per layer and channel: firing rate and the share of the channel's neurons that never fired."""
    rates, silence = arrays.get("channel_firing_rate", {}), arrays.get("channel_silent_fraction", {})
    frames = [pd.DataFrame({"layer": layer, "channel": np.arange(len(rate)), "firing_rate": rate,
                            "silent_fraction": silence[layer], "silent": silence[layer] == 1.0})
              for layer, rate in rates.items() if layer not in analog]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["layer", "channel", "firing_rate", "silent_fraction", "silent"])


def _tokens(arrays: dict[str, dict[str, np.ndarray]], layers: Sequence[LayerInfo], analog: list[str]) -> pd.DataFrame:
    """One row per token layer and token: firing rate and the share of its neurons (features) that never fired,
    with the token's row and column on the patch grid (empty off the grid)."""
    rates, silence = arrays.get("position_firing_rate", {}), arrays.get("position_silent_fraction", {})
    frames = []
    for info in layers:
        if info.geometry.kind != TOKENS or info.name in analog or info.name not in rates:
            continue
        token = np.arange(len(rates[info.name]))
        grid = info.geometry.grid
        frames.append(pd.DataFrame({
            "layer": info.name, "token": token,
            "row": pd.array(token // grid[1] if grid else [None] * len(token), dtype="Int64"),
            "column": pd.array(token % grid[1] if grid else [None] * len(token), dtype="Int64"),
            "firing_rate": rates[info.name], "silent_fraction": silence[info.name]}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TOKEN_COLUMNS)


def _heads(arrays: dict[str, dict[str, np.ndarray]], layers: Sequence[LayerInfo], analog: list[str]) -> pd.DataFrame:
    """One row per attention layer (head-split, or Q/K/V tokens split into heads), part and head: its firing rate."""
    rates = arrays.get("channel_firing_rate", {})
    rows = [{"layer": info.name, "part": part, "head": head, "firing_rate": rate} for info in layers
            if info.geometry.heads and info.name not in analog and info.name in rates
            for part, head, rate in head_rates(rates[info.name], info.geometry)]
    return pd.DataFrame(rows, columns=HEAD_COLUMNS)
