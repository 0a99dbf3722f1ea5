"""Raw spikes of the first few samples, bit-packed on the CPU, for example maps and rasters (opt-in)."""
from __future__ import annotations

import numpy as np
import torch


class SpikeCapture:
    """Keeps the spikes of the first `samples` samples of every layer: `[T, K, ...]`, 1 bit per value."""

    def __init__(self, samples: int) -> None:
        self.samples = samples
        self.packed: dict[str, list[tuple[np.ndarray, tuple[int, ...]]]] = {}

    def captured(self, layer: str) -> int:
        return sum(shape[1] for _, shape in self.packed.get(layer, []))

    def update(self, layer: str, spikes: torch.Tensor) -> None:
        """`spikes: [T, B, ...]` in {0, 1}; samples beyond the first `self.samples` are ignored."""
        wanted = self.samples - self.captured(layer)
        if wanted <= 0:
            return
        part = spikes[:, :wanted].detach().to("cpu", torch.bool).numpy()
        self.packed.setdefault(layer, []).append((np.packbits(part, axis=None), part.shape))

    def spikes(self, layer: str) -> np.ndarray:
        """The captured spikes of `layer` as a uint8 array `[T, K, ...]`."""
        parts = [np.unpackbits(bits, count=int(np.prod(shape))).reshape(shape) for bits, shape in self.packed[layer]]
        return np.concatenate(parts, axis=1)

    def layers(self) -> list[str]:
        return list(self.packed)
