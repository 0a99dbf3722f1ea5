"""Attribution for spiking networks: which input regions and which timesteps drive a prediction
(docs/metrics.md, "Attribution").

    result = spikescope.attribute(model, images, method="saliency", T=2, time_first_input=True)

Captum assumes batch-first models without state; spiking networks run time-first and keep neuron
state between calls. `SpikingFunction` shows Captum a spiking model as a batch-first function with
fresh neuron state on every call, `surrogate_gradients` keeps surrogate gradients flowing in `eval()`,
and `TimestepRouter` shows Captum's layer methods one timestep of a spiking layer as a batch-first
tensor, whatever the layer's time layout. Spike activation maps (`metrics.sam`) need no gradients.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from captum.attr import IntegratedGradients, LayerGradCam, LayerIntegratedGradients, Occlusion, Saliency
from captum.metrics import infidelity as captum_infidelity
from torch import nn
from tqdm import tqdm

from .analyze import batch_logits, class_labels, default_run
from .detect import FOUND_BY_NAME, FOUND_BY_PROBE, OUTPUT_ANALOG, first_tensor, neuron_framework, reset_neuron_states
from .devices import resolve_device
from .errors import SpikescopeError, warn
from .metrics.sam import DEFAULT_GAMMA, spike_activation_map
from .metrics.sam import DEFINITION as SAM_DEFINITION
from .record import LayerInfo, SpikeRecorder
from .timelayout import Layout

INPUT_METHODS = ("saliency", "ig", "occlusion")  # attributions to the input
LAYER_METHODS = ("gradcam", "layer-ig")  # attributions to one spiking layer's spikes, per timestep
METHODS = (*INPUT_METHODS, *LAYER_METHODS, "sam")
CAPTUM_CLASSES = {"saliency": "Saliency", "ig": "IntegratedGradients", "occlusion": "Occlusion",
                  "gradcam": "LayerGradCam", "layer-ig": "LayerIntegratedGradients"}
DEFINITIONS = {
    "saliency": "saliency = |d logit_target / d x| per input element (x the input as the model sees it)",
    "ig": "integrated gradients = (x - b) x (integral over a in [0, 1] of d logit_target / d x at b + a (x - b)), "
          "b the baseline input",
    "occlusion": "occlusion = mean, over the windows covering an input element, of logit_target(x) - "
                 "logit_target(x with the window set to the baseline)",
    "gradcam": "Grad-CAM[t] = ReLU(sum over channels c of (mean over positions of d logit_target / d A[t, c]) x "
               "A[t, c]), A[t] the layer's spikes at timestep t (surrogate gradients)",
    "layer-ig": "layer integrated gradients[t] = integrated gradients of logit_target with respect to the layer's "
                "spikes at timestep t, from those the baseline input gives to those of x, the other timesteps "
                "unchanged",
    "sam": SAM_DEFINITION,
}
COMPLETENESS = ("output_difference", "attribution_sum", "convergence_delta")  # per image, for "ig"
NO_GRAPH = ("not have been used in the graph", "does not require grad")  # autograd: the output is cut off from x
INFIDELITY_NOISE = 0.1  # standard deviation of the perturbations, in the model's (normalised) input units
INFIDELITY_SAMPLES = 8  # perturbations per image
INFIDELITY_MEANING = (
    f"Captum's infidelity (normalised): the mean squared difference, in logit^2, between the change of the target "
    f"logit when the input is perturbed, logit(x) - logit(x - I), and the change the attribution predicts, I . "
    f"attribution, after the attribution is scaled to fit best; over {INFIDELITY_SAMPLES} Gaussian perturbations I "
    f"of standard deviation {INFIDELITY_NOISE} (normalised input units) per image. 0: the attribution predicts "
    f"every change; lower is more faithful. An all-zero attribution scores the mean squared logit change itself "
    f"(the reference), the most a best-scaled attribution can score")
LARGE_REPORT_BYTES = 8e6  # report.html + attributions.npz above this: a browser draws the page slowly
LONG_SECONDS = 300.0  # attribution expected to take longer than this: say so before starting
TIMED_BATCH = 64  # images in the forward pass timed for that estimate (Captum's internal batches are this large)
REPORT_BYTES_PER_VALUE = 7.0  # report.html + attributions.npz bytes per map value (measured on the bundled model:
# 6.6 to 7.7 for saliency, Grad-CAM and SAM on 16 to 64 images; 4.8 for layer integrated gradients, whose many
# channels compress well)


@contextmanager
def surrogate_gradients(model: nn.Module) -> Iterator[None]:
    """Gradients through a model in evaluation mode: its BatchNorm and dropout behave as in `eval()`, its neurons
    run in training mode (some neuron classes take a gradient-free shortcut in `eval()`; spikescope's LIF,
    SpikingJelly's LIFNode and snnTorch's neurons compute the same spikes either way). Every module's mode is
    restored afterwards, also when the block raises."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    for module in model.modules():
        if neuron_framework(module) is not None:
            module.train()
    try:
        with torch.enable_grad():
            yield
    finally:
        for module, training in modes.items():  # parents first: each module ends in its own mode
            module.train(training)


def repeat_over_time(images: torch.Tensor, T: int) -> torch.Tensor:
    """`[B, ...]` images as `[B, T, ...]`: the batch-first form of a direct-encoded input, one copy per timestep."""
    return images.unsqueeze(1).expand(images.shape[0], T, *images.shape[1:]).contiguous()


class SpikingFunction(nn.Module):
    """A spiking model as Captum calls it: `[B, ...]` in, `[B, classes]` logits out, neuron state reset first.

    With `time_first_input`, Captum's input is `[B, T, ...]` (see `repeat_over_time`) and the model gets
    `[T, B, ...]`, so input attributions come per timestep. `run(model, inputs)` performs one forward
    pass (default `model(inputs)`); `[T, B, classes]` and `[B, T, classes]` outputs are averaged over time.
    """

    def __init__(self, model: nn.Module, T: int | None, time_first_input: bool = False,
                 run: Callable[[nn.Module, torch.Tensor], Any] | None = None) -> None:
        super().__init__()
        self.model = model
        self.T = T
        self.time_first_input = time_first_input
        self.run = run or default_run
        self.routers: list[TimestepRouter] = []
        self.time_axis: int | None = None  # of a [T, B, classes] (0) or [B, T, classes] (1) output, once learned

    def run_model(self, inputs: torch.Tensor) -> Any:
        """One forward pass from rest on Captum's form of the input; the model's raw output."""
        reset_neuron_states(self.model)
        for router in self.routers:
            router.new_pass()
        model_input = inputs.transpose(0, 1).contiguous() if self.time_first_input else inputs  # [B, T] -> [T, B]
        return self.run(self.model, model_input)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.logits(self.run_model(inputs), inputs.shape[0])

    def logits(self, output: Any, batch: int) -> torch.Tensor:
        """`[B, classes]` logits of one forward pass's output (see the class docstring)."""
        output = first_tensor(output)
        if self.time_axis is None and output is not None and output.dim() == 3:
            axes = self._time_axes(output, batch)
            if len(axes) == 1 or (axes and self.time_first_input):  # B == T: time-first in, time-first out
                self.time_axis = axes[0]
        if self.time_axis is not None and output is not None and output.dim() == 3:
            return output.mean(dim=self.time_axis)
        logits = batch_logits(output, self.T, batch)
        if logits is None:
            shape = tuple(output.shape) if output is not None else "no tensor"
            raise SpikescopeError(f"attribution needs [B, classes] logits (or [T, B, classes], with T given) from the "
                                  f"model; it returned {shape}")
        return logits

    def learn_time_axis(self, images: torch.Tensor) -> None:
        """Find where time is in the model's output from one call with a batch of T + 1 images (never T, so the
        axes cannot be confused), for every later call, whatever its batch size. Without it, the first call whose
        batch differs from T decides (or, with B == T, time-first input means time-first output)."""
        batch = _as_input(self, images[torch.arange(self.T + 1) % len(images)], self.T)
        with torch.no_grad():
            output = first_tensor(self.run_model(batch))
        if output is not None and output.dim() == 3:
            axes = self._time_axes(output, self.T + 1)
            self.time_axis = axes[0] if axes else None

    def _time_axes(self, output: torch.Tensor, batch: int) -> list[int]:
        """The axes (0, 1) of a 3-D output that can be time: of length T, with the batch on the other one."""
        return [axis for axis in (0, 1) if self.T is not None and output.shape[axis] == self.T
                and output.shape[1 - axis] == batch]


class TimestepRouter:
    """Passes what `module` emits at timestep `t` through `view`, an identity module Captum's layer methods hook,
    as a batch-first `[B, ...]` tensor; the other timesteps pass untouched.

    Captum's layer methods assume one batch-first output per forward pass; a spiking layer's output is
    `[T, B, ...]`, `[B, T, ...]`, `[T*B, ...]` or `[B*T, ...]`, or comes in T calls (single-step neurons).
    Whatever Captum puts in place of `view`'s output (LayerIntegratedGradients scales it) flows on into
    the network. `SpikingFunction` calls `new_pass()` before each forward pass.
    """

    def __init__(self, module: nn.Module, layout: Layout, T: int) -> None:
        self.view = nn.Identity()
        self.layout = layout
        self.T = T
        self.t = 0
        self._calls = 0
        self._handle = module.register_forward_hook(self._route)

    def new_pass(self) -> None:
        self._calls = 0

    def remove(self) -> None:
        self._handle.remove()

    def _route(self, module: nn.Module, args: tuple, output: Any) -> Any:
        if isinstance(output, torch.Tensor):
            return self._routed(output)
        index = next(i for i, value in enumerate(output) if isinstance(value, torch.Tensor))  # snnTorch: (spk, mem)
        routed = self._routed(output[index])
        return None if routed is None else type(output)((*output[:index], routed, *output[index + 1:]))

    def _routed(self, spikes: torch.Tensor) -> torch.Tensor | None:
        layout, T = self.layout, self.T
        if layout in (Layout.PER_CALL, Layout.PER_FORWARD):
            self._calls += 1
            return self.view(spikes) if self._calls - 1 == self.t else None
        steps = {Layout.TIME_FIRST: lambda x: x, Layout.BATCH_FIRST: lambda x: x.transpose(0, 1),
                 Layout.FOLDED: lambda x: x.unflatten(0, (T, -1)),
                 Layout.FOLDED_BATCH_MAJOR: lambda x: x.unflatten(0, (-1, T)).transpose(0, 1)}[layout](spikes)
        parts = list(steps.unbind(0))
        parts[self.t] = self.view(parts[self.t])
        stacked = torch.stack(parts)
        return {Layout.TIME_FIRST: stacked, Layout.BATCH_FIRST: stacked.transpose(0, 1),
                Layout.FOLDED: stacked.flatten(0, 1),
                Layout.FOLDED_BATCH_MAJOR: stacked.transpose(0, 1).flatten(0, 1)}[layout]


@dataclass
class Attribution:
    """What `attribute` found for K images.

    `maps`: `[K, T, ...]` attributions per timestep: for input methods the input's shape (one step,
    "all timesteps together", when the model repeats its input inside), for "gradcam" `[K, T, h, w]` on
    the layer's grid, for "layer-ig" the layer's shape, for "sam" the layer's SAM `[K, T, h, w]`.
    `images`: the inputs as the model saw them `[K, ...]`; `targets`: the class attributed per image;
    `infidelity`: Captum's infidelity per image (input methods), `infidelity_reference` that of an all-zero
    attribution (the mean squared logit change under the perturbations; the scale infidelity is read on);
    `sam[layer]`: `[K, T, h, w]` for every spiking layer with 2D maps; `info`: the method's settings and
    what to know, and for "ig" `info["completeness"]`: per image f(x) - f(baseline), the attributions' sum and
    Captum's convergence delta (their difference).
    """

    method: str
    images: np.ndarray
    maps: np.ndarray
    per_timestep: bool
    layer: str | None
    targets: np.ndarray
    predictions: np.ndarray
    labels: np.ndarray | None
    infidelity: np.ndarray | None
    sam: dict[str, np.ndarray]
    T: int
    seconds: float
    infidelity_reference: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def definitions(self) -> dict[str, str]:
        """The method's formula, and the spike activation map's."""
        sam = {"spike activation map": f"{SAM_DEFINITION}; here gamma = {self.info['gamma']}"}
        return sam if self.method == "sam" else {self.method: DEFINITIONS[self.method], **sam}

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by name, as `attributions.npz` holds them (SAM as `sam:<layer>`)."""
        arrays = {"images": self.images, "attributions": self.maps, "targets": self.targets,
                  "predictions": self.predictions}
        if self.labels is not None:
            arrays["labels"] = self.labels
        if self.infidelity is not None:
            arrays["infidelity"] = self.infidelity
            arrays["infidelity_reference"] = self.infidelity_reference
        arrays.update({name: np.asarray(values) for name, values in self.info.get("completeness", {}).items()})
        return {**arrays, **{f"sam:{layer}": maps for layer, maps in self.sam.items()}}


def attribute(model: nn.Module, images: torch.Tensor, method: str = "saliency", labels: torch.Tensor | None = None,
              target: str | int = "pred", layer: str | None = None, T: int | None = None,
              time_first_input: bool = False, run: Callable[[nn.Module, torch.Tensor], Any] | None = None,
              batch_size: int = 16, n_steps: int = 32, internal_batch_size: int = 64, window: int | None = None,
              baseline: float = 0.0, gamma: float = DEFAULT_GAMMA, infidelity: bool = True, fold: str | None = None,
              batch_first: bool | None = None, classes: Sequence[str] | None = None,
              device: str | torch.device = "cpu", progress: bool = False) -> Attribution:
    """Attribute the predictions of `model` on `images` (`[K, ...]`, batch-first) with `method` (see `METHODS`).

    `target`: "pred" (the predicted class), "label" (needs `labels`) or a class index. `layer`: the
    spiking layer of "gradcam", "layer-ig" and "sam" (default: the deepest one with 2D maps).
    `time_first_input`: the model takes `[T, B, ...]` (images are repeated per timestep, and input
    attributions come per timestep); otherwise `run(model, images)` is one forward pass (see
    `SpikingFunction`). IntegratedGradients uses `n_steps` points and at most `internal_batch_size`
    images per pass; occlusion slides a `window` (default: a seventh of the image side) by half its
    size. Both replace the input by `baseline` (default 0: the dataset mean, after normalisation).
    Spike activation maps with decay `gamma` come with every method. `classes` names the classes in
    the report.
    """
    if method not in METHODS:
        raise SpikescopeError(f"unknown attribution method {method!r}; choose one of {', '.join(METHODS)}")
    if images.dim() < 2 or len(images) == 0:
        raise SpikescopeError(f"attribution needs a batch of inputs [K, ...], got shape {tuple(images.shape)}")
    if batch_size < 1 or n_steps < 1 or internal_batch_size < 1:
        raise SpikescopeError("batch_size, n_steps and internal_batch_size must be positive")
    device = resolve_device(device)
    model = model.to(device).eval()
    started = time.perf_counter()
    if time_first_input and T is None:
        T = getattr(model, "T", None)
        if T is None:
            raise SpikescopeError("time-first input repeats images T times, but T is unknown for this model: pass T")
    function = SpikingFunction(model, T, time_first_input, run)
    batches = [images[i:i + batch_size] for i in range(0, len(images), batch_size)]
    probe = _probe(function, batches, fold, batch_first, gamma, device, progress)
    T = probe.T
    if layer is not None and method in INPUT_METHODS:
        warn(f"--layer {layer} is ignored: it names the layer of gradcam, layer-ig and sam, and {method} attributes "
             "to the input")
    layer_info = _chosen_layer(probe.layers, layer, probe.sam, method)
    cost = estimated_cost(method, probe, images.shape, layer_info, n_steps, window, time_first_input, infidelity)
    _warn_if_large(len(images), *cost)
    targets = _targets(target, probe.predictions, labels, probe.classes)
    info: dict[str, Any] = {"captum": CAPTUM_CLASSES.get(method), "gamma": gamma,
                            "target": {"pred": "the prediction", "label": "the label"}.get(str(target),
                                                                                         f"class {target}"),
                            "spiking_layers": [i.name for i in probe.layers], "classes": list(classes or [])}
    if method == "sam":
        maps, scores = probe.sam[layer_info.name], {}
    else:
        try:
            maps, scores = _captum_maps(function, batches, targets, method, layer_info, device, info,
                                        n_steps=n_steps, internal_batch_size=internal_batch_size, window=window,
                                        baseline=baseline, infidelity=infidelity, progress=progress)
        except RuntimeError as error:
            if not any(sign in str(error) for sign in NO_GRAPH):
                raise
            raise SpikescopeError(f"{_no_gradient(probe.layers)}: use occlusion or sam, which need no "
                                  "gradients") from None
        if not np.any(maps) and method != "occlusion":
            warn(f"every attribution is zero: {_no_gradient(probe.layers)}")
        if method in INPUT_METHODS and not time_first_input:
            maps = maps[:, None]  # one step: the attribution covers every timestep together
    return Attribution(
        method=method, images=images.detach().cpu().numpy(), maps=maps,
        per_timestep=method not in INPUT_METHODS or time_first_input,
        layer=layer_info.name if layer_info is not None else None, targets=targets.numpy(),
        predictions=probe.predictions.numpy(), labels=class_labels(labels).numpy() if labels is not None else None,
        infidelity=scores.get("infidelity"), infidelity_reference=scores.get("infidelity_reference"),
        sam=probe.sam, T=T, seconds=time.perf_counter() - started, info=info)


@dataclass
class _ProbeResult:
    layers: list[LayerInfo]
    T: int
    predictions: torch.Tensor
    classes: int
    sam: dict[str, np.ndarray]
    values: dict[str, int]  # per image: how many spike values each layer emits over the T timesteps
    seconds: float  # one forward pass of one image, timed in a batch of `TIMED_BATCH`


def _probe(function: SpikingFunction, batches: list[torch.Tensor], fold: str | None, batch_first: bool | None,
           gamma: float, device: torch.device, progress: bool) -> _ProbeResult:
    """One gradient-free pass over the images under a SpikeRecorder: the spiking layers and their layouts, T, the
    predictions, and every 2D layer's spike activation maps from the captured spikes."""
    samples = sum(len(b) for b in batches)
    recorder = SpikeRecorder(function.model, metrics=[], T=function.T, capture=samples, fold=fold,
                             batch_first=batch_first)
    outputs = []
    with torch.no_grad(), recorder:
        for batch in tqdm(batches, desc="attribute: spikes", unit="batch", disable=not progress, delay=1.0):
            outputs.append(first_tensor(function.run_model(_as_input(function, batch.to(device),
                                                                      recorder.T or function.T))))
    function.T = recorder.T
    function.learn_time_axis(batches[0].to(device))
    seconds = _seconds_per_image(function, batches[0].to(device))
    predictions = [function.logits(output, len(batch)).cpu() for output, batch in zip(outputs, batches)]
    layers = [i for i in recorder.layers if i.output != OUTPUT_ANALOG]
    if not layers:
        raise SpikescopeError("no spiking layer found in the model")
    captured = {i.name: recorder.capture.spikes(i.name) for i in layers}
    sam = {name: spike_activation_map(torch.from_numpy(spikes), gamma).transpose(0, 1).numpy()
           for name, spikes in captured.items() if spikes.ndim == 5}
    logits = torch.cat(predictions)
    values = {name: spikes[:, 0].size for name, spikes in captured.items()}
    return _ProbeResult(layers, recorder.T, logits.argmax(1), logits.shape[1], sam, values, seconds)


def _seconds_per_image(function: SpikingFunction, images: torch.Tensor) -> float:
    """The time of one image's forward pass, in a batch of `TIMED_BATCH` as Captum would batch it, without hooks."""
    batch = _as_input(function, images[torch.arange(TIMED_BATCH) % len(images)], function.T)
    started = time.perf_counter()
    with torch.no_grad():
        function(batch)
    return (time.perf_counter() - started) / TIMED_BATCH


def estimated_cost(method: str, probe: _ProbeResult, shape: Sequence[int], layer: LayerInfo | None, n_steps: int,
                   window: int | None, time_first_input: bool, infidelity: bool) -> tuple[float, float]:
    """`(bytes, seconds)`: the report folder's size (report.html and attributions.npz, which grow with the
    values of every map drawn and stored) and the attribution's time: the forward passes `method` makes on the
    images (`shape`, `[K, ...]`), a backward pass counting as two, at the probe's timed seconds per image."""
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
    window, strides = _occlusion_window(shape, False, side)
    return math.prod(len(range(0, size - w + 1, step)) for size, w, step in zip(shape, window, strides))


def _warn_if_large(images: int, size: float, seconds: float) -> None:
    """Say before the work when the report would be large or the attribution long, and how many images avoid it."""
    fewer = "attribute fewer images (--samples; in analyze, --attribution-samples)"
    if size > LARGE_REPORT_BYTES:
        warn(f"attributing {images} images writes a report of about {size / 1e6:.0f} MB, which a browser opens "
             f"slowly: {fewer}; {int(images * LARGE_REPORT_BYTES / size)} stay under {LARGE_REPORT_BYTES / 1e6:.0f} MB")
    if seconds > LONG_SECONDS:
        warn(f"attributing {images} images takes about {seconds / 60:.0f} min (estimated from a timed forward pass): "
             f"{fewer}, or use a method needing fewer passes (saliency, gradcam, sam); "
             f"{int(images * LONG_SECONDS / seconds)} take about {LONG_SECONDS / 60:.0f} min")


def _as_input(function: SpikingFunction, batch: torch.Tensor, T: int | None) -> torch.Tensor:
    """The batch as Captum gives it to `function`: `[B, T, ...]` for time-first models, else as it is."""
    return repeat_over_time(batch, T) if function.time_first_input else batch


def _chosen_layer(layers: list[LayerInfo], name: str | None, sam: dict[str, np.ndarray],
                  method: str) -> LayerInfo | None:
    """The spiking layer a layer method or SAM looks at: `name`, or the deepest one with 2D maps (for "layer-ig",
    the deepest of all when none has them)."""
    if method in INPUT_METHODS:
        return None
    by_name = {i.name: i for i in layers}
    if name is None:
        deepest = [i for i in layers if i.name in sam]
        if deepest:
            return deepest[-1]
        if method == "layer-ig":
            return layers[-1]
        raise SpikescopeError(f"{method} needs a spiking layer with 2D spike maps [T, B, C, H, W]; this model has "
                              f"none (its spiking layers: {', '.join(by_name)})")
    if name not in by_name:
        raise SpikescopeError(f"--layer {name} is not a spiking layer of this model; its spiking layers: "
                              f"{', '.join(by_name)}")
    if method in ("gradcam", "sam") and name not in sam:
        raise SpikescopeError(f"{method} needs 2D spike maps [T, B, C, H, W]; layer {name} has none")
    return by_name[name]


def _targets(target: str | int, predictions: torch.Tensor, labels: torch.Tensor | None, classes: int) -> torch.Tensor:
    if target == "pred":
        return predictions.clone()
    if target == "label":
        if labels is None:
            raise SpikescopeError("--target label needs labelled images")
        labels = class_labels(labels)
        if labels.min() < 0 or labels.max() >= classes:
            raise SpikescopeError(f"the labels run from {int(labels.min())} to {int(labels.max())}, but the model has "
                                  f"{classes} classes")
        return labels
    index = int(target) if isinstance(target, int) or str(target).lstrip("-").isdigit() else None
    if index is None:
        raise SpikescopeError(f"--target must be pred, label or a class index, got {target!r}")
    if not 0 <= index < classes:
        raise SpikescopeError(f"--target {index} is not a class of this model (0..{classes - 1})")
    return torch.full_like(predictions, index)


def _captum_maps(function: SpikingFunction, batches: list[torch.Tensor], targets: torch.Tensor, method: str,
                 layer: LayerInfo | None, device: torch.device, info: dict[str, Any],
                 **options: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Captum's attributions per batch, concatenated, and per-image scores by name: for input methods the
    infidelity and its reference (see `_infidelity`); for "ig" the completeness numbers go to
    `info["completeness"]`."""
    router = None
    if method in LAYER_METHODS:
        router = TimestepRouter(function.model.get_submodule(layer.name), layer.layout, function.T)
        function.routers.append(router)
    maps, start = [], 0
    scores: dict[str, list[np.ndarray]] = {}
    try:
        with surrogate_gradients(function.model):
            for batch in tqdm(batches, desc=f"attribute: {method}", unit="batch", disable=not options["progress"],
                              delay=1.0):
                inputs = _as_input(function, batch.to(device), function.T).detach().clone()
                inputs.requires_grad_(method != "occlusion")
                batch_targets = targets[start:start + len(batch)].to(device)
                start += len(batch)
                if router is not None:
                    maps.append(_layer_attribution(function, router, inputs, batch_targets, method, options))
                    continue
                attributions, delta = _input_attribution(function, inputs, batch_targets, method, options, info)
                maps.append(attributions.detach().cpu().numpy())
                if delta is not None:
                    total = attributions.detach().flatten(1).sum(1)
                    for name, values in (("attribution_sum", total), ("convergence_delta", delta),
                                         ("output_difference", total - delta)):
                        scores.setdefault(name, []).append(values.detach().cpu().numpy())
                if options["infidelity"]:
                    for name, values in zip(("infidelity", "infidelity_reference"),
                                            _infidelity(function, inputs, attributions.detach(), batch_targets)):
                        scores.setdefault(name, []).append(values)
    finally:
        if router is not None:
            router.remove()
            function.routers.remove(router)
    scores = {name: np.concatenate(values) for name, values in scores.items()}
    if "infidelity" in scores:
        info["infidelity"] = INFIDELITY_MEANING
    if "convergence_delta" in scores:
        info["completeness"] = {name: scores.pop(name) for name in COMPLETENESS}
    return np.concatenate(maps), scores


def _input_attribution(function: SpikingFunction, inputs: torch.Tensor, targets: torch.Tensor, method: str,
                       options: dict[str, Any], info: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The attributions `[B, ...]`, and for "ig" Captum's convergence delta `[B]`: sum of the attributions minus
    (f(x) - f(baseline))."""
    if method == "saliency":
        info["settings"] = "absolute gradient of the target logit"
        return Saliency(function).attribute(inputs, target=targets, abs=True), None
    if method == "ig":
        info["settings"] = f"baseline {options['baseline']:g}, {options['n_steps']} steps (Gauss-Legendre)"
        return IntegratedGradients(function).attribute(inputs, baselines=options["baseline"], target=targets,
                                                       n_steps=options["n_steps"],
                                                       internal_batch_size=options["internal_batch_size"],
                                                       return_convergence_delta=True)
    window, strides = _occlusion_window(inputs.shape[1:], function.time_first_input, options["window"])
    info["settings"] = (f"window {window}, strides {strides} (per sample, batch excluded), baseline "
                        f"{options['baseline']:g}")
    return Occlusion(function).attribute(inputs, sliding_window_shapes=window, strides=strides,
                                         baselines=options["baseline"], target=targets,
                                         perturbations_per_eval=max(1, 256 // len(inputs)),
                                         show_progress=options["progress"]), None


def _occlusion_window(shape: Sequence[int], time_first: bool, side: int | None) -> tuple[tuple[int, ...], ...]:
    """Occlusion's window and strides for one sample `[(T,) C, H, W]` or `[(T,) N]`: square patches over every
    channel (one timestep at a time), or runs of a vector."""
    sample = tuple(shape[1:] if time_first else shape)
    lead = (1,) if time_first else ()
    if len(sample) == 3:
        channels, height, width = sample
        side = side or max(1, min(height, width) // 7)
        step = max(1, side // 2)
        return (*lead, channels, side, side), (*lead, channels, step, step)
    if len(sample) == 1:
        side = side or max(1, sample[0] // 16)
        return (*lead, side), (*lead, max(1, side // 2))
    raise SpikescopeError(f"occlusion needs image inputs [B, C, H, W] or vectors [B, N]; a sample here has shape "
                          f"{list(sample)}")


def _layer_attribution(function: SpikingFunction, router: TimestepRouter, inputs: torch.Tensor,
                       targets: torch.Tensor, method: str, options: dict[str, Any]) -> np.ndarray:
    """`[B, T, ...]`: the layer method run once per timestep, each time on that timestep's spikes."""
    steps = []
    for t in range(function.T):
        router.t = t
        if method == "gradcam":
            result = LayerGradCam(function, router.view).attribute(inputs, target=targets, relu_attributions=True)
            result = result[:, 0]
        else:
            result = LayerIntegratedGradients(function, router.view).attribute(
                inputs, baselines=options["baseline"], target=targets, n_steps=options["n_steps"],
                internal_batch_size=options["internal_batch_size"])
        steps.append(result.detach().cpu())
    return torch.stack(steps, dim=1).numpy()


def _infidelity(function: SpikingFunction, inputs: torch.Tensor, attributions: torch.Tensor,
                targets: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per image, Captum's normalised infidelity of `attributions`, and on the same perturbations that of an
    all-zero attribution: the mean squared logit change itself, the most a best-scaled attribution can score."""
    def scores(attributed: torch.Tensor, normalize: bool) -> np.ndarray:
        generator = torch.Generator(device=inputs.device).manual_seed(0)

        def perturb(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * INFIDELITY_NOISE
            return noise, x - noise

        with torch.no_grad():
            return captum_infidelity(function, perturb, inputs, attributed, target=targets,
                                     n_perturb_samples=INFIDELITY_SAMPLES, normalize=normalize).cpu().numpy()

    return scores(attributions, True), scores(torch.zeros_like(attributions), False)


def _no_gradient(layers: list[LayerInfo]) -> str:
    unknown = [i.name for i in layers if i.found_by in (FOUND_BY_PROBE, FOUND_BY_NAME)]
    reason = (f"neurons that no framework declares ({', '.join(unknown)}) may have no surrogate gradient"
              if unknown else "the target logit does not depend on the input here")
    return f"no gradient flows back from the logits ({reason})"
