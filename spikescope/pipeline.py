"""`analyze_checkpoint`: what `spikescope analyze` does, callable in one line from Python.

    result, files = spikescope.analyze_checkpoint("runs/baseline/checkpoint.pt", limit=1000)
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .analyze import AnalysisResult, analyze, repeated_input
from .checkpoint import bundled_checkpoint, load
from .data import load_dataset, make_loader
from .errors import SpikescopeError, describe
from .metrics.energy import check_preset
from .report.outputs import write_outputs
from .train import resolve_device

DEFAULT_SAMPLE = "fashion-mnist-sample"


def analyze_checkpoint(checkpoint: str | Path | None = None, layers: str | Sequence[str] = "all",
                       data: str | None = None, data_root: str | None = None, limit: int | None = None,
                       batch_size: int = 100, device: str = "cpu", energy: str = "fp32",
                       out: str | Path | None = None, png: bool = False, arch: str | None = None,
                       arch_kwargs: dict[str, Any] | None = None, T: int | None = None, trust_pickle: bool = False,
                       time_first_input: bool = False, capture: int = 3, command: str | None = None,
                       progress: bool = False) -> tuple[AnalysisResult, dict[str, Path]]:
    """Load a model file, analyze it on a test set and write the report folder; returns `(result, files)`.

    With no `checkpoint`, the bundled baseline demo model is analysed on the bundled Fashion-MNIST
    sample. The dataset defaults to the one named in the checkpoint; its normalisation is the
    checkpoint's. `out` defaults to `reports/<checkpoint name>`.
    """
    check_preset(energy)
    torch_device = resolve_device(device)
    path = Path(checkpoint) if checkpoint is not None else bundled_checkpoint("baseline")
    model, meta = load(path, torch_device, arch, arch_kwargs, T, trust_pickle)
    if meta["T"] is None:
        raise SpikescopeError("the number of timesteps is unknown for this model: pass --T")
    trained_on = meta.get("dataset", {})
    name = data or (DEFAULT_SAMPLE if checkpoint is None else trained_on.get("name"))
    if name is None:
        raise SpikescopeError(f"{path} does not say which dataset it was trained on: pass --data")
    dataset = load_dataset(name, "test", data_root, limit)
    if trained_on.get("input_shape") and list(dataset.images.shape[1:]) != list(trained_on["input_shape"]):
        raise SpikescopeError(f"the model takes inputs of shape {trained_on['input_shape']}, but {name} has "
                              f"{list(dataset.images.shape[1:])}")
    if trained_on.get("mean"):
        dataset = dataclasses.replace(dataset, mean=tuple(trained_on["mean"]), std=tuple(trained_on["std"]))
    try:
        result = analyze(model, make_loader(dataset, batch_size), layers=layers, T=meta["T"], device=torch_device,
                         energy=energy, capture=capture, progress=progress,
                         run=repeated_input(meta["T"]) if time_first_input else None)
    except RuntimeError as error:  # shape and dtype mismatches between the user's model and the data
        raise SpikescopeError(f"the model cannot run on {name} images of shape {list(dataset.images.shape[1:])} "
                              f"({describe(error)})") from None
    report_meta = {
        "model": meta.get("arch", type(model).__name__), "arch_kwargs": meta.get("arch_kwargs", {}),
        "parameters": sum(p.numel() for p in model.parameters()), "checkpoint": str(path),
        "source": meta["source"], "dataset": f"{dataset.name} (test split)", "T": meta["T"],
        "training_history": meta.get("history", []), "train_config": meta.get("train_config", {}),
        "command": command or "spikescope.analyze_checkpoint(...) (Python)",
        "version": __version__,
    }
    destination = Path(out) if out is not None else Path("reports") / path.stem
    return result, write_outputs(result, report_meta, destination, png)
