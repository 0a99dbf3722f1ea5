"""Streaming, mergeable per-layer statistics: one module per family, all with the `Metric` state contract."""
from .base import Metric, MetricResult
from .energy import Energy
from .firing import FiringRate
from .sam import SpikeActivationMap
from .spectrum import Spectrum
from .temporal import TemporalSimilarity

__all__ = ["Energy", "FiringRate", "Metric", "MetricResult", "SpikeActivationMap", "Spectrum", "TemporalSimilarity"]
