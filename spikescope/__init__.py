"""spikescope: look inside trained spiking neural networks.

    import spikescope
    results = spikescope.analyze(model, loader, layers="all")
"""
__version__ = "0.1.0"

from .analyze import AnalysisResult, analyze, repeated_input, split_batch  # noqa: E402
from .checkpoint import bundled_checkpoint, load  # noqa: E402
from .data import load_dataset, make_loader  # noqa: E402
from .fsta import FSTA, add_fsta  # noqa: E402
from .pipeline import analyze_checkpoint, evaluate_checkpoint  # noqa: E402
from .record import SpikeRecorder  # noqa: E402
from .train import TrainConfig, train  # noqa: E402

__all__ = ["AnalysisResult", "FSTA", "SpikeRecorder", "TrainConfig", "__version__", "add_fsta", "analyze",
           "analyze_checkpoint", "bundled_checkpoint", "evaluate_checkpoint", "load", "load_dataset", "make_loader",
           "repeated_input", "split_batch", "train"]
