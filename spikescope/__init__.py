"""spikescope: look inside trained spiking neural networks.

    import spikescope
    results = spikescope.analyze(model, loader, layers="all")

The names below are imported when first used (`spikescope.analyze` loads torch then), so that
`import spikescope` and the command's start-up import nothing heavy before they can take Ctrl-C.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

_HOMES = {  # public name -> (module, attribute)
    "AnalysisResult": (".analyze", "AnalysisResult"), "analyze": (".analyze", "analyze"),
    "repeated_input": (".analyze", "repeated_input"), "split_batch": (".analyze", "split_batch"),
    "bundled_checkpoint": (".checkpoint", "bundled_checkpoint"), "load": (".checkpoint", "load"),
    "load_dataset": (".data", "load_dataset"), "make_loader": (".data", "make_loader"),
    "Energy": (".metrics", "Energy"), "FiringRate": (".metrics", "FiringRate"), "Spectrum": (".metrics", "Spectrum"),
    "TemporalSimilarity": (".metrics", "TemporalSimilarity"),
    "image_orientation": (".metrics.spectrum", "image_orientation"), "build_model": (".models", "build"),
    "Comparison": (".compare", "Comparison"), "compare": (".compare", "compare"),
    "paired_difference": (".groupstats", "paired_difference"), "spearman": (".groupstats", "spearman"),
    "summarize": (".groupstats", "summarize"), "FSTA": (".fsta", "FSTA"), "add_fsta": (".fsta", "add_fsta"),
    "analyze_checkpoint": (".pipeline", "analyze_checkpoint"),
    "attribute_checkpoint": (".pipeline", "attribute_checkpoint"),
    "evaluate_checkpoint": (".pipeline", "evaluate_checkpoint"),
    "Attribution": (".attribution", "Attribution"), "attribute": (".attribution", "attribute"),
    "plan_attribution": (".attribution", "plan_attribution"),
    "SpikeActivationMap": (".metrics.sam", "SpikeActivationMap"), "SpikeRecorder": (".record", "SpikeRecorder"),
    "TrainConfig": (".train", "TrainConfig"), "initial_model": (".train", "initial_model"),
    "train": (".train", "train"), "ARMS": (".arms", "ARMS"), "train_arms": (".arms", "train_arms"),
    "frequency_ablation": (".frequency.ablation", "frequency_ablation"),
    "FrequencyAblation": (".frequency.result", "FrequencyAblation"),
    "compare_frequency": (".frequency.comparison", "compare_frequency"),
    "fsta_frequencies": (".frequency.fsta_frequencies", "fsta_frequencies"),
    "FstaFrequencies": (".frequency.fsta_frequencies", "FstaFrequencies"),
    "frequency_checkpoint": (".frequency.checkpoint", "frequency_checkpoint"),
}

__all__ = sorted([*_HOMES, "__version__"])


def __getattr__(name: str) -> Any:
    """`spikescope.X` for every X in `__all__`, imported on first use."""
    if name not in _HOMES:
        raise AttributeError(f"module 'spikescope' has no attribute {name!r}")
    module, attribute = _HOMES[name]
    value = getattr(importlib.import_module(module, __name__), attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


class _Package(types.ModuleType):
    """The package, whose functions `analyze`, `compare` and `train` keep their names when the submodules of the
    same names are imported (the import system would otherwise set `spikescope.analyze` to the module)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if not (name in _HOMES and isinstance(value, types.ModuleType)):
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
