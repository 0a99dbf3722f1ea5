"""How large an attribution's report will be and how long its Captum passes take, estimated before the work, so
users hear it before they wait (`LARGE_REPORT_BYTES`, `LONG_SECONDS`)."""
from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Sequence

import torch

from .captum_methods import INFIDELITY_SAMPLES, INPUT_METHODS, occlusion_window
from .errors import warn
from .record import LayerInfo

if TYPE_CHECKING:
    from .attribution import ProbeResult

LARGE_REPORT_BYTES = 8e6  # report.html + attributions.npz above this: a browser draws the page slowly
LONG_SECONDS = 300.0  # attribution expected to take longer than this: say so before starting
REPORT_BYTES_PER_VALUE = 7.0  # report.html + attributions.npz bytes per map value (measured on the bundled model:
# 6.6 to 7.7 for saliency, Grad-CAM and SAM on 16 to 64 images; 4.8 for layer integrated gradients, whose many
# channels compress well)


def finished_seconds(started: float, device: torch.device) -> float:
    """Seconds since `started` (`time.perf_counter()`) once the work queued on `device` is done: a GPU runs
    kernels after the call that launched them returns, so the clock stops after `torch.cuda.synchronize`."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def estimated_cost(method: str, probe: ProbeResult, shape: Sequence[int], layer: LayerInfo | None, n_steps: int,
                   window: int | None, time_first_input: bool, infidelity: bool) -> tuple[float, float]:
    """`(bytes, seconds)`: the report folder's size (report.html and attributions.npz, which grow with the
    values of every map drawn and stored) and the attribution's time: the forward passes `method` makes on the
    images (`shape`, `[K, ...]`), a backward pass counting as two, at the probe's seconds per image (a pass
    under the recorder's hooks, in the user's batches: an upper bound for a pass without them). "sam" reuses
    the probe's spikes: no pass, no time."""
    K, image, T = shape[0], math.prod(shape[1:]), probe.T
    maps = {"saliency": image, "ig": image, "occlusion": image}.get(method)
    if maps is None:  # Grad-CAM and SAM sum the channels; layer integrated gradients keeps them
        maps = probe.sam[layer.name][0].size if method in ("gradcam", "sam") else probe.values[layer.name]
    elif time_first_input:
        maps *= T
    values = image + maps + sum(spikes[0].size for spikes in probe.sam.values())
    windows = _occlusion_positions(shape[1:], window) * (T if time_first_input else 1) if method == "occlusion" else 0
    passes = {"saliency": 3, "ig": 3 * n_steps + 2, "occlusion": windows + 1, "gradcam": 3 * T,
              "layer-ig": 3 * n_steps * T, "sam": 0}[method]
    passes += 2 * INFIDELITY_SAMPLES if infidelity and method in INPUT_METHODS else 0
    return REPORT_BYTES_PER_VALUE * K * values, probe.seconds * K * passes


def _occlusion_positions(shape: Sequence[int], side: int | None) -> int:
    """How many windows occlusion slides over one image of `shape` (one timestep)."""
    window, strides = occlusion_window(shape, False, side)
    return math.prod(len(range(0, size - w + 1, step)) for size, w, step in zip(shape, window, strides))


def warn_if_large(images: int, size: float, seconds: float) -> None:
    """Say before the work when the report would be large or the attribution long, and how many images avoid it."""
    fewer = "attribute fewer images (--samples; in analyze, --attribution-samples)"
    if size > LARGE_REPORT_BYTES:
        warn(f"attributing {images} images writes a report of about {size / 1e6:.0f} MB, which a browser opens "
             f"slowly: {fewer}; {int(images * LARGE_REPORT_BYTES / size)} stay under {LARGE_REPORT_BYTES / 1e6:.0f} MB")
    if seconds > LONG_SECONDS:
        warn(f"attributing {images} images takes about {seconds / 60:.0f} min (estimated from a timed forward pass): "
             f"{fewer}, or use a method needing fewer passes (saliency, gradcam, sam); "
             f"{int(images * LONG_SECONDS / seconds)} take about {LONG_SECONDS / 60:.0f} min")

