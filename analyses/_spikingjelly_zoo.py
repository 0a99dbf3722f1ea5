"""SpikingJelly 2.0's model zoo at small sizes, calibrated to fire as trained networks do (the peer-counter study).

    model, inputs, T = build("spikformer")
    rates = calibrate(model, inputs)       # every neuron layer now fires 5-30 % on `inputs`

`build(name)` gives one of `NAMES`, untrained (seeded), multi-step, on the CPU, in eval mode, with the inputs it
expects: the first `BATCH` images of the bundled Fashion-MNIST sample, padded to 32 x 32 (QKFormer: enlarged to
64 x 64, so that its last stage, 16 x smaller, still has 4 x 4 tokens) and repeated over three channels. Models
with a `T` attribute take `[B, C, H, W]` and repeat it T times themselves; the SEW and spiking ResNets take
`[T, B, C, H, W]`. An untrained network fires 0-3 % in most layers (and not at all after attention), which would
leave spike-spike products empty; `calibrate` fixes that through BatchNorm alone.
"""
from __future__ import annotations

import sys
import types
from typing import Callable

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional, neuron
from spikingjelly.activation_based.model import MSResNet, MaxFormer, QKFormer, SpikeDrivenTransformer, Spikformer
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import spikescope

T = 4
BATCH = 2
SIZE = 32
CLASSES = 10
SEED = 0
SHIFT_RANGE = 6.0  # largest BatchNorm bias shift tried, in units of the normalised pre-activation
SEARCH_STEPS = 12  # interpolation steps per neuron layer, once the range is bracketed


def _resnet_builders() -> tuple[Callable[..., nn.Module], Callable[..., nn.Module]]:
    """`sew_resnet18` and `spiking_resnet18`. Their modules import torchvision's `load_state_dict_from_url` only
    to fetch pretrained weights (never used here); without torchvision, torch.hub's function of that name stands
    in while they are imported, and is removed from `sys.modules` afterwards."""
    stand_ins = {}
    try:
        import torchvision  # noqa: F401
    except ImportError:
        utils = types.ModuleType("torchvision._internally_replaced_utils")
        utils.load_state_dict_from_url = torch.hub.load_state_dict_from_url
        stand_ins = {"torchvision": types.ModuleType("torchvision"), utils.__name__: utils}
    sys.modules.update(stand_ins)
    try:
        from spikingjelly.activation_based.model.sew_resnet import sew_resnet18
        from spikingjelly.activation_based.model.spiking_resnet import spiking_resnet18
    finally:
        for name in stand_ins:
            del sys.modules[name]
    return sew_resnet18, spiking_resnet18


def _sew_resnet_18() -> nn.Module:
    return _resnet_builders()[0](cnf="ADD", spiking_neuron=neuron.IFNode, num_classes=CLASSES, detach_reset=True)


def _spiking_resnet_18() -> nn.Module:
    return _resnet_builders()[1](spiking_neuron=neuron.IFNode, num_classes=CLASSES, detach_reset=True)


BUILDERS: dict[str, tuple[Callable[[], nn.Module], int]] = {  # name -> (constructor, input side in pixels)
    "spikformer": (lambda: Spikformer(T=T, img_size_h=SIZE, img_size_w=SIZE, patch_size=4, num_classes=CLASSES,
                                      embed_dims=64, num_heads=4, depths=1), SIZE),
    "spike-driven-transformer": (lambda: SpikeDrivenTransformer(T=T, num_classes=CLASSES, embed_dims=64, num_heads=4,
                                                                depths=1, pooling_stat="0111"), SIZE),
    "qkformer": (lambda: QKFormer(T=T, num_classes=CLASSES, embed_dims=64, num_heads=(8, 16, 2), depths=(1, 1, 1)),
                 2 * SIZE),
    "maxformer": (lambda: MaxFormer(T=T, num_classes=CLASSES, embed_dims=64, depths=(1, 1, 1), cifar=True), SIZE),
    "sew-resnet-18": (_sew_resnet_18, SIZE),
    "ms-resnet": (lambda: MSResNet(T=T, num_classes=CLASSES, layers=(1, 1, 1), base_channels=16, stem_kernel_size=3,
                                   stem_stride=1), SIZE),
    "spiking-resnet-18": (_spiking_resnet_18, SIZE),
}
NAMES = tuple(BUILDERS)


def sample_images(side: int = SIZE, batch: int = BATCH) -> torch.Tensor:
    """`[batch, 3, side, side]`: the first bundled Fashion-MNIST images, normalised, padded from 28 to 32 pixels
    with background, enlarged to `side` and repeated over the three channels every model here takes."""
    images = spikescope.load_dataset("fashion-mnist-sample", limit=batch)
    padded = F.pad(images.images.float() / 255, (2, 2, 2, 2))
    normalised = (padded - images.mean[0]) / images.std[0]
    if side != padded.shape[-1]:
        normalised = F.interpolate(normalised, size=(side, side), mode="nearest")
    return normalised.repeat(1, 3, 1, 1)


def build(name: str) -> tuple[nn.Module, torch.Tensor, int]:
    """`(model, inputs, T)` for one of `NAMES`: seeded, multi-step, eval mode, uncalibrated."""
    if name not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(NAMES)}")
    constructor, side = BUILDERS[name]
    torch.manual_seed(SEED)
    model = constructor()
    functional.set_step_mode(model, "m")
    images = sample_images(side)
    inputs = images if hasattr(model, "T") else images.unsqueeze(0).repeat(T, 1, 1, 1, 1)
    return model.eval(), inputs, T


def neuron_layers(model: nn.Module) -> dict[str, nn.Module]:
    """SpikingJelly neuron modules by name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, neuron.BaseNode)}


class _Reached(Exception):
    """Raised by a hook to end a forward pass once the layer of interest has run."""


def firing_rates(model: nn.Module, inputs: torch.Tensor, stop_after: str | None = None) -> dict[str, float]:
    """Mean output of every neuron layer over one forward pass on `inputs` (neurons reset first), in the order
    they ran; with `stop_after`, the pass ends once that layer has run."""
    sums: dict[str, list[float]] = {}

    def record(name: str, output: torch.Tensor) -> None:
        total = sums.setdefault(name, [0.0, 0.0])
        total[0] += float(output.double().sum())
        total[1] += output.numel()
        if name == stop_after:
            raise _Reached

    handles = [m.register_forward_hook(lambda m, a, o, n=name: record(n, o))
               for name, m in neuron_layers(model).items()]
    try:
        with torch.no_grad():
            functional.reset_net(model)
            model(inputs)
    except _Reached:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return {name: s / n for name, (s, n) in sums.items()}


def _feeding_norms(model: nn.Module, inputs: torch.Tensor) -> dict[str, list[nn.Module]]:
    """For each neuron layer, the BatchNorms whose bias shift moves its input: those its input depends on
    without passing through a neuron (directly or through residual sums: a gradient of the input with respect
    to their bias, with every neuron's output cut from the graph), less those already feeding a layer that
    runs earlier, unless none is left. A layer fed by spikes only (an attention product) takes the BatchNorms
    of the layers whose spikes it multiplies."""
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    starts: dict[str, torch.Tensor] = {}
    spikes: dict[str, torch.Tensor] = {}

    def start(name: str, args: tuple) -> None:
        starts[name] = args[0]

    def cut(name: str, output: torch.Tensor) -> torch.Tensor:
        spikes[name] = output.detach().requires_grad_()
        return spikes[name]

    handles = []
    for name, m in neuron_layers(model).items():
        handles.append(m.register_forward_pre_hook(lambda m, a, n=name: start(n, a)))
        handles.append(m.register_forward_hook(lambda m, a, o, n=name: cut(n, o)))
    try:
        with torch.enable_grad():
            functional.reset_net(model)
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    feeds: dict[str, list[nn.Module]] = {}
    claimed: set[nn.Module] = set()
    for name, x in starts.items():
        sources = [m.bias for m in norms] + list(spikes.values())
        grads = torch.autograd.grad(x.sum(), sources, allow_unused=True, retain_graph=True)
        moved = [g is not None and bool(g.abs().sum() > 0) for g in grads]
        direct = [m for m, hit in zip(norms, moved) if hit]
        if not direct:
            through = {n for n, hit in zip(spikes, moved[len(norms):]) if hit}
            direct = list(dict.fromkeys(m for n in through for m in feeds[n]))
        feeds[name] = [m for m in direct if m not in claimed] or direct
        claimed.update(direct)
    return feeds


def _normalise(model: nn.Module, inputs: torch.Tensor) -> None:
    """Every BatchNorm gets weight 1, bias 0 and the statistics of its input on `inputs` (one pass in train
    mode with a cumulative average), so that each pre-activation is standardised."""
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    momenta = [m.momentum for m in norms]
    with torch.no_grad():
        for m in norms:
            m.reset_parameters()
            m.momentum = None
        model.train()
        functional.reset_net(model)
        model(inputs)
    model.eval()
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def _shift_into(model: nn.Module, inputs: torch.Tensor, layer: str, norms: list[nn.Module], low: float,
                high: float) -> None:
    """Shift the `norms`' biases by a common amount until `layer` fires within [low, high]: widen the step
    until the rate crosses the range, then interpolate the rate linearly inside the bracket (firing grows
    with the shift)."""
    bases = [norm.bias.detach().clone() for norm in norms]

    def rate_at(shift: float) -> float:
        with torch.no_grad():
            for norm, base in zip(norms, bases):
                norm.bias.copy_(base + shift)
        return firing_rates(model, inputs, stop_after=layer)[layer]

    known = {0.0: firing_rates(model, inputs, stop_after=layer)[layer]}
    direction = 1.0 if known[0.0] < low else -1.0
    step = 0.5
    while all((r < low) == (direction > 0) for r in known.values()) and step <= SHIFT_RANGE:
        shift = direction * step
        known[shift] = rate_at(shift)
        if low <= known[shift] <= high:
            return
        step *= 2
    for _ in range(SEARCH_STEPS):
        below = max((s for s, r in known.items() if r < low), default=-SHIFT_RANGE)
        above = min((s for s, r in known.items() if r > high), default=SHIFT_RANGE)
        r_below, r_above = known.get(below, 0.0), known.get(above, 1.0)
        shift = below + ((low + high) / 2 - r_below) * (above - below) / max(r_above - r_below, 1e-9)
        shift = min(max(shift, below + (above - below) / 8), above - (above - below) / 8)
        known[shift] = rate_at(shift)
        if low <= known[shift] <= high:
            return


def calibrate(model: nn.Module, inputs: torch.Tensor, low: float = 0.05, high: float = 0.30) -> dict[str, float]:
    """Set `model`'s BatchNorm statistics and biases so that every neuron layer fires within [low, high] on
    `inputs`; returns the firing rates reached. Deterministic: standardise every BatchNorm (`_normalise`), then,
    in the order the layers run, shift the bias of the BatchNorm feeding the first layer out of range until it
    fires inside the middle four fifths of the range; repeat until none is out of range."""
    _normalise(model, inputs)
    feeds = _feeding_norms(model, inputs)
    margin = (high - low) / 10  # aim inside, so that rounding elsewhere (threads, devices) keeps the rates in range
    for _ in range(4 * len(feeds)):
        rates = firing_rates(model, inputs)
        outside = [name for name, rate in rates.items() if not low <= rate <= high]
        if not outside:
            return rates
        _shift_into(model, inputs, outside[0], feeds[outside[0]], low + margin, high - margin)
    raise RuntimeError(f"could not calibrate {type(model).__name__}: {', '.join(outside)} fire outside "
                       f"[{low}, {high}]: {', '.join(f'{rates[n]:.3f}' for n in outside)}")
