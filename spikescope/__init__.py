"""spikescope: look inside trained spiking neural networks.

    import spikescope
    results = spikescope.analyze(model, loader, layers="all")
"""
__version__ = "0.1.0"

from .analyze import AnalysisResult, analyze, repeated_input, split_batch  # noqa: E402
from .checkpoint import bundled_checkpoint, load  # noqa: E402
from .data import load_dataset, make_loader  # noqa: E402
from .metrics import Energy, FiringRate, Spectrum, TemporalSimilarity  # noqa: E402
from .metrics.spectrum import image_orientation  # noqa: E402
from .models import build as build_model  # noqa: E402
from .compare import Comparison, compare  # noqa: E402
from .groupstats import paired_difference, spearman, summarize  # noqa: E402
from .fsta import FSTA, add_fsta  # noqa: E402
from .pipeline import analyze_checkpoint, attribute_checkpoint, evaluate_checkpoint  # noqa: E402
from .attribution import Attribution, attribute  # noqa: E402
from .metrics.sam import SpikeActivationMap  # noqa: E402
from .record import SpikeRecorder  # noqa: E402
from .train import TrainConfig, initial_model, train  # noqa: E402
from .arms import ARMS, train_arms  # noqa: E402

__all__ = ["ARMS", "AnalysisResult", "Attribution", "Comparison", "Energy", "FSTA", "FiringRate", "Spectrum",
           "SpikeActivationMap", "SpikeRecorder", "TemporalSimilarity", "TrainConfig", "__version__", "add_fsta",
           "analyze", "analyze_checkpoint", "attribute", "attribute_checkpoint",
           "build_model", "bundled_checkpoint", "compare", "evaluate_checkpoint", "image_orientation", "initial_model",
           "load", "load_dataset", "make_loader", "paired_difference", "repeated_input", "spearman", "split_batch",
           "summarize", "train", "train_arms"]
