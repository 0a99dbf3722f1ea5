"""What `spikescope analyze`, `evaluate` and `attribute` do, each callable in one line from Python.

    result, files = spikescope.analyze_checkpoint("runs/baseline/checkpoint.pt", limit=1000)
    scores = spikescope.evaluate_checkpoint("runs/baseline/checkpoint.pt")
    attribution, files = spikescope.attribute_checkpoint("runs/baseline/checkpoint.pt", method="ig")
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from . import __version__
from .analyze import AnalysisResult, ModelAnalysis, analyze, repeated_input
from .attribution import Attribution, AttributionPlan, plan_attribution
from .checkpoint import BUNDLED_MODELS, bundled_checkpoint, load
from .data import LABEL_SETS, ImageSet, load_dataset, make_loader
from .devices import resolve_device
from .errors import SpikescopeError, describe, recorded_warnings, warn
from .metrics.base import Metric
from .energy.models import energy_model
from .metrics.sam import SpikeActivationMap
from .models.registry import takes_time_first_input
from .record import default_metrics
from .report.folder import check_output_folder, default_report_folder
from .report.outputs import write_attribution_outputs, write_outputs
from .train import evaluate

DEFAULT_SAMPLE = "fashion-mnist-sample"


def evaluation_set(meta: dict[str, Any], data: str | None, data_root: str | None, limit: int | None) -> ImageSet:
    """The test images every command uses by default: the bundled sample for a bundled demo model (however it was
    named), else the dataset the checkpoint names, normalised as the model was trained. Warns when its labels
    are not the checkpoint's (accuracy then means nothing)."""
    path = meta.get("path", "the model file")
    trained_on = meta.get("dataset", {})
    name = data or (DEFAULT_SAMPLE if _is_bundled(meta.get("path")) else trained_on.get("name"))
    if name is None:
        raise SpikescopeError(f"{path} does not say which dataset it was trained on: pass --data")
    dataset = load_dataset(name, "test", data_root, limit)
    if trained_on.get("input_shape") and list(dataset.images.shape[1:]) != list(trained_on["input_shape"]):
        raise SpikescopeError(f"{path} takes inputs of shape {trained_on['input_shape']}, but {name} has "
                              f"{list(dataset.images.shape[1:])}")
    trained_labels = LABEL_SETS.get(trained_on.get("name"))
    if trained_labels is not None and trained_labels != dataset.classes:
        warn(f"{name} has other labels ({len(dataset.classes)} classes) than {trained_on['name']}, which the model "
             "was trained on: its accuracy there is meaningless")
    if trained_on.get("mean"):
        dataset = dataclasses.replace(dataset, mean=tuple(trained_on["mean"]), std=tuple(trained_on["std"]))
    return dataset


def _is_bundled(path: str | Path | None) -> bool:
    """True for the file of a demo model shipped with spikescope."""
    return path is not None and Path(path).resolve() in {bundled_checkpoint(name).resolve() for name in BUNDLED_MODELS}


MODULE_SOURCE = "(module)"  # where a model given as a module comes from, in reports and folder markers


def _load(checkpoint: str | Path | nn.Module | None, device: str,
          **load_options: Any) -> tuple[Path | None, nn.Module, dict[str, Any]]:
    if isinstance(checkpoint, nn.Module):  # given in Python: nothing to load; a dataset must be named (--data)
        T = load_options.get("T") or getattr(checkpoint, "T", None)
        meta = {"arch": type(checkpoint).__name__, "source": "module", "T": T,
                "path": f"the {type(checkpoint).__name__} module"}
        return None, checkpoint.to(resolve_device(device)).eval(), meta
    path = Path(checkpoint) if checkpoint is not None else bundled_checkpoint("baseline")
    model, meta = load(path, resolve_device(device), **load_options)
    return path, model, {**meta, "path": str(path)}


@dataclass
class PreparedModel:
    """A model file loaded and checked against its test images, before any pass runs: what `analyze_file` and
    `compare` run (`path` is None for a model given as a module). `run` feeds a multi-step model `[T, B, ...]`;
    `fold`, `batch_first` and `tokens` as for `analyze`."""

    path: Path | None
    model: nn.Module
    meta: dict[str, Any]
    dataset: ImageSet
    T: int | None
    run: Callable[[nn.Module, torch.Tensor], Any] | None = None
    fold: str | None = None
    batch_first: bool | None = None
    tokens: str | Sequence[int] | None = None

    def analysis(self, layers: str | Sequence[str], device: str, energy: str, capture: int = 0,
                 metrics: Sequence[Metric] | None = None, membrane: bool = False) -> ModelAnalysis:
        """A `ModelAnalysis` of this model, to be driven batch by batch (see `lockstep.analyze_together`)."""
        device_ = resolve_device(device)
        return ModelAnalysis(self.model.to(device_).eval(), layers, self.T, device_,
                             metrics if metrics is not None else default_metrics(energy), capture, self.run,
                             self.fold, self.batch_first, membrane, self.tokens)

    def description(self, result: AnalysisResult) -> dict[str, Any]:
        """What the model and its data are, for reports."""
        meta = self.meta
        return {"model": meta.get("arch", type(self.model).__name__), "arch_kwargs": meta.get("arch_kwargs", {}),
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "checkpoint": str(self.path or MODULE_SOURCE), "source": meta["source"],
                "dataset": f"{self.dataset.name} (test split)", "dataset_name": self.dataset.name,
                "T": result.info["T"],
                "seed": meta.get("train_config", {}).get("seed"), "training_history": meta.get("history", []),
                "train_config": meta.get("train_config", {}), "version": __version__}


def prepare_file(checkpoint: str | Path | nn.Module | None = None, data: str | None = None,
                 data_root: str | None = None, limit: int | None = None, device: str = "cpu", arch: str | None = None,
                 arch_kwargs: dict[str, Any] | None = None, T: int | None = None, trust_pickle: bool = False,
                 time_first_input: bool = False, fold: str | None = None,
                 batch_first: bool | None = None, tokens: str | Sequence[int] | None = None) -> PreparedModel:
    """Load a model file (see `checkpoint.load`), or take a module as it is, and its test images
    (`evaluation_set`; a module names none, so `data` must), checking every option on the way: one-line errors
    before any pass runs."""
    resolve_device(device)
    _check_counts(T=T, limit=limit)
    path, model, meta = _load(checkpoint, device, arch=arch, arch_kwargs=arch_kwargs, T=T, trust_pickle=trust_pickle)
    if meta["T"] is None and time_first_input:
        raise SpikescopeError("--time-first-input repeats images T times, but T is unknown for this model: pass --T")
    dataset = evaluation_set(meta, data, data_root, limit)
    return PreparedModel(path, model, meta, dataset, meta["T"], repeated_input(meta["T"]) if time_first_input else None,
                         fold, batch_first, tokens)


def analyze_file(checkpoint: str | Path | None = None, layers: str | Sequence[str] = "all", data: str | None = None,
                 data_root: str | None = None, limit: int | None = None, batch_size: int = 100, device: str = "cpu",
                 energy: str = "fp32", arch: str | None = None, arch_kwargs: dict[str, Any] | None = None,
                 T: int | None = None, trust_pickle: bool = False, time_first_input: bool = False,
                 fold: str | None = None, batch_first: bool | None = None, capture: int = 3,
                 attribution: str | None = None, attribution_samples: int = 8, membrane: bool = False,
                 progress: bool = False, tokens: str | Sequence[int] | None = None, neurobench: bool = False
                 ) -> tuple[AnalysisResult, dict[str, Any]]:
    """Load a model file and analyze it on its test images; returns `(result, what the model and data are)`.

    The images are those of `evaluation_set`; warnings issued on the way reach `result.info["warnings"]`.
    With `attribution` (a method of `attribution.METHODS`), the first `attribution_samples` images are
    attributed too (`result.attribution`; planned, with its size warning, before the analysis) and the mean
    spike activation map of every layer is measured on all of them (`result.sam`). `membrane` adds the
    membrane-potential statistics (`result.membrane`), `neurobench` NeuroBench's metrics (`result.neurobench`,
    see `spikescope.neurobench`). `tokens` declares the patch grid of token layers (`HxW`
    or `(h, w)`; see `spikescope.tokens`).
    """
    energy_model(energy)
    _check_counts(attribution_samples=attribution_samples)
    with recorded_warnings() as warnings_seen:
        prepared = prepare_file(checkpoint, data, data_root, limit, device, arch, arch_kwargs, T, trust_pickle,
                                time_first_input, fold, batch_first, tokens)
        dataset = prepared.dataset
        try:
            plan = _plan_examples(prepared.model, dataset, attribution, attribution_samples,
                                  time_first_input=time_first_input, T=prepared.T, layers=layers, fold=fold,
                                  batch_first=batch_first, tokens=tokens, device=device,
                                  progress=progress) if attribution else None
            metrics = default_metrics(energy) + ([SpikeActivationMap()] if attribution else [])
            result = analyze(prepared.model, make_loader(dataset, batch_size), layers=layers, T=prepared.T,
                             device=device, energy=energy, capture=capture, progress=progress, fold=fold,
                             batch_first=batch_first, run=prepared.run, metrics=metrics, membrane=membrane,
                             tokens=tokens, neurobench=neurobench)
            if plan is not None:
                result.attribution = plan.run()
        except RuntimeError as error:  # shape and dtype mismatches between the user's model and the data
            raise _cannot_run(dataset, error) from None
    result.info["warnings"] = list(dict.fromkeys(warnings_seen + result.info.get("warnings", [])))
    return result, prepared.description(result)


def _check_counts(**counts: int | None) -> None:
    for name, value in counts.items():
        if value is not None and value < 1:
            raise SpikescopeError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def _cannot_run(dataset: ImageSet, error: RuntimeError) -> SpikescopeError:
    """Shape and dtype mismatches between the user's model and the data, as one line."""
    return SpikescopeError(f"the model cannot run on {dataset.name} images of shape {list(dataset.images.shape[1:])} "
                           f"({describe(error)})")


def _plan_examples(model: nn.Module, dataset: ImageSet, method: str, samples: int,
                   time_first_input: bool, **options: Any) -> AttributionPlan:
    """`plan_attribution` on the first `samples` images of `dataset`; spikescope's own models get their input
    time-first, so that input attributions come per timestep."""
    images, labels = next(iter(make_loader(dataset, min(samples, len(dataset)))))
    return plan_attribution(model, images, method, labels=labels, classes=dataset.classes,
                     time_first_input=time_first_input or takes_time_first_input(model), **options)


def analyze_checkpoint(checkpoint: str | Path | None = None, out: str | Path | None = None, png: bool = False,
                       command: str | None = None, **options: Any) -> tuple[AnalysisResult, dict[str, Path]]:
    """What `spikescope analyze` does: `analyze_file(checkpoint, **options)`, then the report folder; returns
    `(result, files)`.

    With no `checkpoint`, the bundled baseline demo model is analysed on the bundled Fashion-MNIST
    sample. The dataset defaults to the one named in the checkpoint; its normalisation is the
    checkpoint's. `out` defaults to `reports/<name>` (see `default_report_folder`); it is checked
    before anything is loaded, and written whole or not at all.
    """
    source = Path(checkpoint) if checkpoint is not None else bundled_checkpoint("baseline")
    destination = check_output_folder(out if out is not None else default_report_folder("analyze", [source]),
                                      "analyze")
    result, meta = analyze_file(checkpoint, **options)
    meta["command"] = command or "spikescope.analyze_checkpoint(...) (Python)"
    return result, write_outputs(result, meta, destination, png)


def evaluate_checkpoint(checkpoint: str | Path | None = None, data: str | None = None, data_root: str | None = None,
                        limit: int | None = None, batch_size: int = 256, device: str = "cpu",
                        progress: bool = False) -> dict[str, float]:
    """Accuracy, loss and firing rate of a saved model on the same default test images as `analyze_checkpoint`."""
    prepared = prepare_file(checkpoint, data, data_root, limit, device)
    return evaluate(prepared.model, make_loader(prepared.dataset, batch_size), resolve_device(device), progress)


def attribute_checkpoint(checkpoint: str | Path | None = None, method: str = "saliency", layer: str | None = None,
                         samples: int = 16, target: str | int = "pred", out: str | Path | None = None,
                         data: str | None = None, data_root: str | None = None, device: str = "cpu",
                         arch: str | None = None, arch_kwargs: dict[str, Any] | None = None, T: int | None = None,
                         trust_pickle: bool = False, time_first_input: bool = False, fold: str | None = None,
                         batch_first: bool | None = None, layers: str | Sequence[str] = "all",
                         command: str | None = None, progress: bool = False,
                         tokens: str | Sequence[int] | None = None) -> tuple[Attribution, dict[str, Path]]:
    """What `spikescope attribute` does: attribute the first `samples` test images of a model file with `method`
    (see `attribution.plan_attribution`; `layers` selects the layers its recorder looks at, as in `analyze`) and
    write the report folder `out` (default `reports/<name>-<method>`); returns `(attribution, files)`. With no
    `checkpoint`, the bundled baseline demo model on the bundled sample."""
    source = Path(checkpoint) if checkpoint is not None else bundled_checkpoint("baseline")
    destination = check_output_folder(out if out is not None else default_report_folder("attribute", [source], method),
                                      "attribute")
    _check_counts(samples=samples)
    with recorded_warnings() as warnings_seen:
        prepared = prepare_file(checkpoint, data, data_root, samples, device, arch, arch_kwargs, T, trust_pickle,
                                time_first_input, fold, batch_first, tokens)
        dataset = prepared.dataset
        try:
            result = _plan_examples(prepared.model, dataset, method, samples, time_first_input, layer=layer,
                                    target=target, T=prepared.T, layers=layers, fold=fold, batch_first=batch_first,
                                    tokens=tokens, device=device, progress=progress).run()
        except RuntimeError as error:
            raise _cannot_run(dataset, error) from None
    description = {"model": prepared.meta.get("arch", type(prepared.model).__name__),
                   "arch_kwargs": prepared.meta.get("arch_kwargs", {}), "checkpoint": str(prepared.path),
                   "dataset": f"{dataset.name} (test split)", "version": __version__,
                   "command": command or "spikescope.attribute_checkpoint(...) (Python)",
                   "warnings": list(dict.fromkeys(warnings_seen))}
    return result, write_attribution_outputs(result, description, destination)
