"""Frequency interventions: remove 2D-DCT bands from a spiking layer's maps and measure what the decision loses."""
