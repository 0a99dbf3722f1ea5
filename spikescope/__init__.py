"""spikescope: look inside trained spiking neural networks."""
__version__ = "0.1.0"
