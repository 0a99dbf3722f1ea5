"""Attribution for spiking networks: which input regions and which timesteps drive a prediction
(docs/metrics.md, "Attribution").

    result = spikescope.attribute(model, images, method="saliency", T=2, time_first_input=True)

`plan_attribution` checks the request, runs one gradient-free probe pass (the spiking layers, T, the predictions
and the spike activation maps) and warns when the work will be large; its `run()` makes Captum's passes
(`captum_methods`, on the model as `captum_adapter` shows it to Captum). Spike activation maps (`metrics.sam`)
need no gradients.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .analyze import class_labels
from .attribution_cost import estimated_cost, finished_seconds, warn_if_large
from .captum_adapter import SpikingFunction, as_input
from .captum_methods import CAPTUM_CLASSES, INPUT_METHODS, LAYER_METHODS, NO_GRAPH, captum_maps
from .detect import FOUND_BY_NAME, FOUND_BY_PROBE, OUTPUT_ANALOG, first_tensor
from .devices import resolve_device
from .errors import SpikescopeError, warn
from .metrics.sam import DEFAULT_GAMMA, spike_activation_map
from .metrics.sam import DEFINITION as SAM_DEFINITION
from .record import LayerInfo, SpikeRecorder

METHODS = (*INPUT_METHODS, *LAYER_METHODS, "sam")
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


def attribute(model: nn.Module, images: torch.Tensor, method: str = "saliency", **options: Any) -> Attribution:
    """Attribute the predictions of `model` on `images` (`[K, ...]`, batch-first) with `method` (see `METHODS`):
    `plan_attribution(model, images, method, **options).run()` (the options are described there)."""
    return plan_attribution(model, images, method, **options).run()


def plan_attribution(model: nn.Module, images: torch.Tensor, method: str = "saliency",
                     labels: torch.Tensor | None = None, target: str | int = "pred", layer: str | None = None,
                     T: int | None = None, time_first_input: bool = False,
                     run: Callable[[nn.Module, torch.Tensor], Any] | None = None, batch_size: int = 16,
                     n_steps: int = 32, internal_batch_size: int = 64, window: int | None = None,
                     baseline: float = 0.0, gamma: float = DEFAULT_GAMMA, infidelity: bool = True,
                     fold: str | None = None, batch_first: bool | None = None, layers: str | Sequence[str] = "all",
                     classes: Sequence[str] | None = None, device: str | torch.device = "cpu",
                     progress: bool = False, tokens: str | Sequence[int] | None = None) -> AttributionPlan:
    """Check an attribution of `model`'s predictions on `images` and probe the model once without gradients; warn
    when the report will be large or the attribution long. `run()` on the plan does the attribution.

    `target`: "pred" (the predicted class), "label" (needs `labels`) or a class index. `layer`: the
    spiking layer of "gradcam", "layer-ig" and "sam" (default: the deepest one with 2D maps). `layers`:
    the layers the recorder looks at, as `SpikeRecorder`'s (name a neuron that no framework declares and
    that was silent on the images). `time_first_input`: the model takes `[T, B, ...]` (images are repeated
    per timestep, and input attributions come per timestep); otherwise `run(model, images)` is one forward
    pass (see `SpikingFunction`). IntegratedGradients uses `n_steps` points and at most
    `internal_batch_size` images per pass; occlusion slides a `window` (default: a seventh of the image
    side) by half its size. Both replace the input by `baseline` (default 0: the dataset mean, after
    normalisation). Spike activation maps with decay `gamma` come with every method. `classes` names the
    classes in the report. `tokens` declares the patch grid of token layers (see `spikescope.tokens`): token
    layers on it have maps; head-split and other non-spatial layers never do, and are never the default layer.
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
    probe = _probe(function, batches, layers, fold, batch_first, gamma, device, progress, tokens)
    if layer is not None and method in INPUT_METHODS:
        warn(f"--layer {layer} is ignored: it names the layer of gradcam, layer-ig and sam, and {method} attributes "
             "to the input")
    layer_info = _chosen_layer(probe.layers, layer, probe.sam, method)
    cost = estimated_cost(method, probe, images.shape, layer_info, n_steps, window, time_first_input, infidelity)
    warn_if_large(len(images), *cost)
    targets = _targets(target, probe.predictions, labels, probe.classes)
    info: dict[str, Any] = {"captum": CAPTUM_CLASSES.get(method), "gamma": gamma,
                            "target": {"pred": "the prediction", "label": "the label"}.get(str(target),
                                                                                         f"class {target}"),
                            "spiking_layers": [i.name for i in probe.layers], "classes": list(classes or [])}
    options = {"n_steps": n_steps, "internal_batch_size": internal_batch_size, "window": window,
               "baseline": baseline, "infidelity": infidelity, "progress": progress}
    return AttributionPlan(function, images, labels, batches, probe, method, layer_info, targets, info, options,
                           device, time.perf_counter() - started)


@dataclass
class AttributionPlan:
    """An attribution checked, its model probed and its cost announced, before Captum's passes (`run`).
    `options`: Captum's settings (see `captum_methods.captum_maps`); `seconds`: the time spent so far."""

    function: SpikingFunction
    images: torch.Tensor
    labels: torch.Tensor | None
    batches: list[torch.Tensor]
    probe: ProbeResult
    method: str
    layer: LayerInfo | None
    targets: torch.Tensor
    info: dict[str, Any]
    options: dict[str, Any]
    device: torch.device
    seconds: float

    def run(self) -> Attribution:
        """The attribution: Captum's maps (or the probe's spike activation maps for "sam") and their scores."""
        started, method, probe = time.perf_counter(), self.method, self.probe
        time_first_input = self.function.time_first_input
        if method == "sam":
            maps, scores = probe.sam[self.layer.name], {}
        else:
            try:
                maps, scores = captum_maps(self.function, self.batches, self.targets, method, self.layer, self.device,
                                           self.info, **self.options)
            except RuntimeError as error:
                if not any(sign in str(error) for sign in NO_GRAPH):
                    raise
                raise SpikescopeError(f"{_no_gradient(probe.layers)}: use occlusion or sam, which need no "
                                      "gradients") from None
            if not np.any(maps) and method != "occlusion":
                warn(f"every attribution is zero: {_no_gradient(probe.layers)}")
            if method in INPUT_METHODS and not time_first_input:
                maps = maps[:, None]  # one step: the attribution covers every timestep together
        labels = self.labels
        return Attribution(
            method=method, images=self.images.detach().cpu().numpy(), maps=maps,
            per_timestep=method not in INPUT_METHODS or time_first_input,
            layer=self.layer.name if self.layer is not None else None, targets=self.targets.numpy(),
            predictions=probe.predictions.numpy(), labels=class_labels(labels).numpy() if labels is not None else None,
            infidelity=scores.get("infidelity"), infidelity_reference=scores.get("infidelity_reference"),
            sam=probe.sam, T=probe.T, seconds=self.seconds + time.perf_counter() - started, info=self.info)


@dataclass
class ProbeResult:
    layers: list[LayerInfo]
    T: int
    predictions: torch.Tensor
    classes: int
    sam: dict[str, np.ndarray]
    values: dict[str, int]  # per image: how many spike values each layer emits over the T timesteps
    seconds: float  # one image's gradient-free forward pass under the recorder, timed over the probe's batches


def _probe(function: SpikingFunction, batches: list[torch.Tensor], layers: str | Sequence[str], fold: str | None,
           batch_first: bool | None, gamma: float, device: torch.device, progress: bool,
           tokens: str | Sequence[int] | None = None) -> ProbeResult:
    """One gradient-free pass over the images under a SpikeRecorder: the spiking layers and their layouts, T, the
    predictions, and every 2D layer's spike activation maps from the captured spikes."""
    samples = sum(len(b) for b in batches)
    recorder = SpikeRecorder(function.model, layers, metrics=[], T=function.T, capture=samples, fold=fold,
                             batch_first=batch_first, tokens=tokens)
    outputs = []
    started = time.perf_counter()
    with torch.no_grad(), recorder:
        for batch in tqdm(batches, desc="attribute: spikes", unit="batch", disable=not progress, delay=1.0):
            outputs.append(first_tensor(function.run_model(as_input(function, batch.to(device),
                                                                      recorder.T or function.T))))
    seconds = finished_seconds(started, device) / samples
    function.T = recorder.T
    _learn_time_axis(function, outputs, batches, device)
    predictions = [function.logits(output, len(batch)).cpu() for output, batch in zip(outputs, batches)]
    layers = [i for i in recorder.layers if i.output != OUTPUT_ANALOG]
    if not layers:
        raise SpikescopeError("no spiking layer found in the model")
    captured = {i.name: recorder.capture.spikes(i.name) for i in layers}
    sam = {name: spike_activation_map(torch.from_numpy(spikes), gamma).transpose(0, 1).numpy()
           for name, spikes in captured.items() if spikes.ndim == 5}
    logits = torch.cat(predictions)
    values = {name: spikes[:, 0].size for name, spikes in captured.items()}
    return ProbeResult(layers, recorder.T, logits.argmax(1), logits.shape[1], sam, values, seconds)


def _learn_time_axis(function: SpikingFunction, outputs: list[Any], batches: list[torch.Tensor],
                     device: torch.device) -> None:
    """Where time is in the model's output: from a probe batch of other than T images when there is one (its
    output cannot confuse the axes), else from a pass of T + 1 images (`SpikingFunction.learn_time_axis`)."""
    other = next(((output, len(batch)) for output, batch in zip(outputs, batches) if len(batch) != function.T), None)
    if other is not None:
        function.logits(*other)
    else:
        function.learn_time_axis(batches[0].to(device))




def _chosen_layer(layers: list[LayerInfo], name: str | None, sam: dict[str, np.ndarray],
                  method: str) -> LayerInfo | None:
    """The spiking layer a layer method or SAM looks at: `name`, or the deepest one with 2D maps, images or tokens
    on the patch grid (layer methods see tokens as features on the grid, `captum_adapter.TimestepRouter`), never a
    head-split or other non-spatial layer (for "layer-ig", the deepest of all when none has them)."""
    if method in INPUT_METHODS:
        return None
    by_name = {i.name: i for i in layers}
    if name is None:
        deepest = [i for i in layers if i.name in sam and i.geometry.spatial]
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




def _no_gradient(layers: list[LayerInfo]) -> str:
    unknown = [i.name for i in layers if i.found_by in (FOUND_BY_PROBE, FOUND_BY_NAME)]
    reason = (f"neurons that no framework declares ({', '.join(unknown)}) may have no surrogate gradient"
              if unknown else "the target logit does not depend on the input here")
    return f"no gradient flows back from the logits ({reason})"
