"""`analyze(model, loader)`: run a network over data under a SpikeRecorder and collect every result."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from .detect import first_tensor, reset_neuron_states
from .metrics.base import Metric
from .errors import SpikescopeError
from .metrics.energy import ENERGY_PRESETS_PJ, Energy
from .record import SpikeRecorder, default_metrics


@dataclass
class AnalysisResult:
    """Everything `analyze` measured.

    `layers`: one row per spiking layer (depth order); `timesteps`: one row per layer and timestep;
    `energy`: one row per synaptic layer, per image; `spectra[layer]`: DCT power `[T, H, W]`;
    `similarity[layer]`: `T x T` arrays "spike_cosine", "left_out", "spectral_cosine", "spectral_cosine_ac";
    `captured[layer]`: raw spikes `[T, K, ...]` of the first K samples (if asked for);
    `definitions`: each metric's formula; `info`: samples, T, accuracy, runtime and the layers found.
    """

    layers: pd.DataFrame
    timesteps: pd.DataFrame
    energy: pd.DataFrame
    spectra: dict[str, np.ndarray]
    similarity: dict[str, dict[str, np.ndarray]]
    channel_firing_rate: dict[str, np.ndarray]
    captured: dict[str, np.ndarray]
    definitions: dict[str, str]
    info: dict[str, Any] = field(default_factory=dict)

    def energy_totals(self) -> dict[str, float]:
        """Per-image totals over all synaptic layers: SOPs (exact and approx.), MACs and energy in pJ."""
        columns = ["sops_per_image", "sops_approx_per_image", "macs_per_image", "energy_pj_per_image"]
        return {c: float(self.energy[c].sum()) if len(self.energy) else 0.0 for c in columns}


def _default_run(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    return model(inputs)


def repeated_input(T: int) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    """A `run` for multi-step models that expect `[T, B, ...]`: static inputs are repeated T times."""
    return lambda model, inputs: model(inputs.unsqueeze(0).expand(T, *inputs.shape).contiguous())


def _logits(output: Any, T: int | None, batch: int) -> torch.Tensor | None:
    """`[B, classes]` logits from a model output: `[T, B, classes]` outputs are averaged over time."""
    output = first_tensor(output)
    if output is not None and output.dim() == 3 and output.shape[0] == T and output.shape[1] == batch:
        output = output.mean(dim=0)
    return output if output is not None and output.dim() == 2 and output.shape[0] == batch else None


def analyze(model: nn.Module, loader: Iterable, layers: str | Sequence[str] = "all", T: int | None = None,
            device: str | torch.device = "cpu", energy: str = "fp32", capture: int = 0,
            metrics: Sequence[Metric] | None = None, run: Callable[[nn.Module, torch.Tensor], Any] | None = None,
            progress: bool = False) -> AnalysisResult:
    """Run `model` over `loader` (batches of inputs, or of `(inputs, labels)`) and measure its spiking layers.

    `run(model, inputs)` performs one forward pass (default `model(inputs)`; see `repeated_input` for
    multi-step models that take `[T, B, ...]`);
    neuron states of SpikingJelly/snnTorch models are reset before every batch. Accuracy is
    reported when batches carry labels and the output is `[B, classes]` logits (or `[T, B, classes]`,
    averaged over time).
    """
    model = model.to(device).eval()
    run = run or _default_run
    metrics = list(metrics) if metrics is not None else default_metrics(energy)
    correct = samples = batches = 0
    started = time.perf_counter()
    with torch.no_grad(), SpikeRecorder(model, layers=layers, metrics=metrics, T=T, capture=capture) as recorder:
        for batch in tqdm(loader, desc="analyze", unit="batch", disable=not progress, delay=1.0):
            inputs, labels = (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)
            batches += 1
            reset_neuron_states(model)
            output = run(model, inputs.to(device))
            logits = _logits(output, recorder.T, len(labels)) if labels is not None else None
            if logits is not None:
                correct += int((logits.argmax(1).cpu() == labels).sum())
                samples += len(labels)
    if batches == 0:
        raise SpikescopeError("the data loader yielded no batch")
    runtime = time.perf_counter() - started
    return _assemble(recorder, runtime, correct / samples if samples else None)


SIMILARITY_ARRAYS = ("spike_cosine", "left_out", "spectral_cosine", "spectral_cosine_ac")


def _assemble(recorder: SpikeRecorder, runtime: float, accuracy: float | None) -> AnalysisResult:
    results = recorder.compute()
    layers = pd.DataFrame([{"layer": i.name, "depth": d, "type": i.type, "found_by": i.found_by,
                            "layout": i.layout.value} for d, i in enumerate(recorder.layers)])
    timesteps = pd.DataFrame()
    arrays: dict[str, dict[str, np.ndarray]] = {}
    for name, result in results.items():
        arrays.update(result.arrays)
        if name != "Energy" and len(result.layers):  # energy rows are synaptic layers, kept apart
            layers = layers.merge(result.layers, on="layer", how="left")
        if result.timesteps is not None and len(result.timesteps):
            timesteps = result.timesteps if timesteps.empty else timesteps.merge(result.timesteps, on=["layer", "t"],
                                                                                 how="left")
    similarity: dict[str, dict[str, np.ndarray]] = {}
    for key in SIMILARITY_ARRAYS:
        for layer, matrix in arrays.get(key, {}).items():
            similarity.setdefault(layer, {})[key] = matrix
    info = {"samples": int(layers["samples"].max()) if "samples" in layers and len(layers) else 0,
            "T": recorder.T, "accuracy": accuracy, "runtime_s": runtime, "warnings": list(recorder.warnings)}
    energy_metric = next((m for m in recorder.metrics if isinstance(m, Energy)), None)
    if energy_metric is not None:
        info["energy_preset"] = energy_metric.preset
        info["energy_pj"] = dict(ENERGY_PRESETS_PJ[energy_metric.preset])
    capture = recorder.capture
    return AnalysisResult(
        layers=layers, timesteps=timesteps,
        energy=results["Energy"].layers if "Energy" in results else pd.DataFrame(),
        spectra=arrays.get("spectrum", {}), similarity=similarity,
        channel_firing_rate=arrays.get("channel_firing_rate", {}),
        captured={layer: capture.spikes(layer) for layer in capture.layers()} if capture else {},
        definitions={k: v for r in results.values() for k, v in r.definitions.items()}, info=info)
