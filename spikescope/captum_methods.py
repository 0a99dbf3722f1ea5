"""Captum's attribution methods run on a spiking network (`captum_adapter`), batch by batch: the maps, Captum's
infidelity against an all-zero attribution's, and integrated gradients' completeness numbers."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from captum.attr import IntegratedGradients, LayerGradCam, LayerIntegratedGradients, Occlusion, Saliency
from captum.metrics import infidelity as captum_infidelity
from tqdm import tqdm

from .captum_adapter import SpikingFunction, TimestepRouter, as_input, surrogate_gradients
from .errors import SpikescopeError
from .record import LayerInfo

INPUT_METHODS = ("saliency", "ig", "occlusion")  # attributions to the input
LAYER_METHODS = ("gradcam", "layer-ig")  # attributions to one spiking layer's spikes, per timestep
CAPTUM_CLASSES = {"saliency": "Saliency", "ig": "IntegratedGradients", "occlusion": "Occlusion",
                  "gradcam": "LayerGradCam", "layer-ig": "LayerIntegratedGradients"}
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


def captum_maps(function: SpikingFunction, batches: list[torch.Tensor], targets: torch.Tensor, method: str,
                 layer: LayerInfo | None, device: torch.device, info: dict[str, Any],
                 **options: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Captum's attributions per batch, concatenated, and per-image scores by name: for input methods the
    infidelity and its reference (see `_infidelity`); for "ig" the completeness numbers go to
    `info["completeness"]`."""
    router = None
    if method in LAYER_METHODS:
        router = TimestepRouter(function.model.get_submodule(layer.name), layer.layout, function.T, layer.geometry)
        function.routers.append(router)
    maps, start = [], 0
    scores: dict[str, list[np.ndarray]] = {}
    try:
        with surrogate_gradients(function.model):
            for batch in tqdm(batches, desc=f"attribute: {method}", unit="batch", disable=not options["progress"],
                              delay=1.0):
                inputs = as_input(function, batch.to(device), function.T).detach().clone()
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
    window, strides = occlusion_window(inputs.shape[1:], function.time_first_input, options["window"])
    info["settings"] = (f"window {window}, strides {strides} (per sample, batch excluded), baseline "
                        f"{options['baseline']:g}")
    return Occlusion(function).attribute(inputs, sliding_window_shapes=window, strides=strides,
                                         baselines=options["baseline"], target=targets,
                                         perturbations_per_eval=max(1, 256 // len(inputs)),
                                         show_progress=options["progress"]), None


def occlusion_window(shape: Sequence[int], time_first: bool, side: int | None) -> tuple[tuple[int, ...], ...]:
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

