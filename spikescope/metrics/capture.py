"""Raw spikes of the first few samples, kept compactly on the CPU, for example maps and rasters (opt-in)."""
from __future__ import annotations

import numpy as np
import torch


class SpikeCapture:
    """Keeps the spikes of the first `samples` samples of every layer: `[T, K, ...]`.

    Binary parts are bit-packed (1 bit per value); spike counts (multi-spike neurons) are kept as
    uint8, saturating at 255.
    """

    def __init__(self, samples: int) -> None:
        self.samples = samples
        self.parts: dict[str, list[tuple[np.ndarray, tuple[int, ...], bool]]] = {}

    def captured(self, layer: str) -> int:
        return sum(shape[1] for _, shape, _ in self.parts.get(layer, []))

    def update(self, layer: str, spikes: torch.Tensor) -> None:
        """`spikes: [T, B, ...]` of non-negative whole numbers; samples beyond the first `self.samples` are ignored."""
        wanted = self.samples - self.captured(layer)
        if wanted <= 0:
            return
        part = spikes[:, :wanted].detach().to("cpu").clamp(0, 255).to(torch.uint8).numpy()
        packed = bool(part.max(initial=0) <= 1)
        data = np.packbits(part, axis=None) if packed else part.copy()
        self.parts.setdefault(layer, []).append((data, part.shape, packed))

    def spikes(self, layer: str) -> np.ndarray:
        """The captured spikes of `layer` as a uint8 array `[T, K, ...]`."""
        parts = [np.unpackbits(data, count=int(np.prod(shape))).reshape(shape) if packed else data
                 for data, shape, packed in self.parts[layer]]
        return np.concatenate(parts, axis=1)

    def layers(self) -> list[str]:
        return list(self.parts)
