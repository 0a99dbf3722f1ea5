"""Attribution of real spiking networks with Captum, through spikescope's adapter, and spike activation maps."""
import math

import numpy as np
import pytest
import torch

from spikescope.attribution import METHODS, Attribution, attribute, plan_attribution
from spikescope.captum_adapter import SpikingFunction, repeat_over_time, surrogate_gradients
from spikescope.checkpoint import bundled_checkpoint, load
from spikescope.data import grating, load_dataset, make_loader
from spikescope.errors import SpikescopeError, SpikescopeWarning
from spikescope.metrics.sam import SpikeActivationMap, spike_activation_map
from spikescope.models.layers import SpikingConv
from spikescope.neurons import LIF
from spikescope.record import SpikeRecorder
from spikescope.report.attribution import attribution_figure, attribution_section, sam_figure
from spikescope.train import TrainConfig, train

IMAGES, LABELS = next(iter(make_loader(load_dataset("fashion-mnist-sample", "test", limit=6), 6)))
BLACK = (0.0 - 0.5) / 0.35  # a black pixel of the gratings dataset, normalised


@pytest.fixture(scope="module")
def bundled():
    model, meta = load(bundled_checkpoint("baseline"), torch.device("cpu"))
    return model


@pytest.fixture(scope="module")
def gratings_model(tmp_path_factory):
    """spikescope's compact CNN trained for one short epoch to tell vertical, horizontal and diagonal stripes."""
    out = tmp_path_factory.mktemp("gratings") / "run"
    path = train(TrainConfig(data="gratings", arch_kwargs={"width": 4}, batch_size=32, epochs=1, limit=640,
                             test_limit=200, lr=3e-3, out=str(out)), progress=False)
    model, meta = load(path, torch.device("cpu"))
    assert meta["history"][-1]["test_accuracy"] > 0.9
    return model


def half_striped(count: int = 12) -> tuple[torch.Tensor, np.ndarray]:
    """Gratings of every orientation on one half of the image (left or right, alternating), black elsewhere."""
    rng = np.random.default_rng(0)
    images, halves = [], []
    for k in range(count):
        stripes = grating(28, k % 3, rng.uniform(2, 6), rng.uniform(0, 2 * math.pi))
        image = np.zeros((28, 28))
        columns = slice(0, 14) if k % 2 == 0 else slice(14, 28)
        image[:, columns] = stripes[:, columns]
        images.append(image)
        halves.append(k % 2)
    return (torch.tensor(np.stack(images), dtype=torch.float32)[:, None] - 0.5) / 0.35, np.array(halves)


@pytest.mark.parametrize("method, least", [("saliency", 0.7), ("occlusion", 0.85), ("ig", 0.99)])
def test_attributions_fall_on_the_striped_half_at_every_timestep(gratings_model, method, least):
    images, halves = half_striped()
    result = attribute(gratings_model, images, method, T=2, time_first_input=True, baseline=BLACK)
    assert result.maps.shape == (12, 2, 1, 28, 28) and result.per_timestep
    for t in range(2):
        mass = np.abs(result.maps[:, t, 0])
        left, right = mass[:, :, :14].sum(axis=(1, 2)), mass[:, :, 14:].sum(axis=(1, 2))
        striped_share = np.where(halves == 0, left, right) / (left + right)
        assert striped_share.min() > least, (method, t, striped_share)


def test_per_timestep_input_gradients_add_up_to_the_gradient_of_the_image(bundled):
    """The model repeats a [B, C, H, W] image over time inside; its gradient is the sum of the per-copy ones."""
    function = SpikingFunction(bundled, T=2, time_first_input=True)
    target = 3
    repeated = repeat_over_time(IMAGES, 2).requires_grad_()
    image = IMAGES.clone().requires_grad_()
    with surrogate_gradients(bundled):
        function(repeated)[:, target].sum().backward()
        bundled(image)[:, target].sum().backward()
    assert image.grad.abs().sum() > 0
    torch.testing.assert_close(repeated.grad.sum(dim=1), image.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_finite_attributions_that_are_not_all_zero_in_eval_mode(bundled, method):
    bundled.eval()
    result = attribute(bundled, IMAGES, method, labels=LABELS, T=2, time_first_input=True, n_steps=8)
    assert np.isfinite(result.maps).all() and np.abs(result.maps).sum() > 0
    assert result.maps.shape[:2] == (6, 2)
    assert not bundled.training and not any(m.training for m in bundled.modules())  # modes restored
    assert (result.infidelity is not None) == (method in ("saliency", "ig", "occlusion"))
    if result.infidelity is not None:
        assert result.infidelity.shape == (6,) and np.isfinite(result.infidelity).all()
    assert set(result.sam) == {f"block{i}.lif" for i in range(1, 6)}
    assert result.sam["block1.lif"].shape == (6, 2, 28, 28) and result.sam["block5.lif"].shape == (6, 2, 7, 7)


def direct_gradcam(model: torch.nn.Module, neuron: torch.nn.Module, images: torch.Tensor,
                   per_step=lambda x: x) -> torch.Tensor:
    """Grad-CAM `[B, T, H, W]` of the predicted class by autograd on the neuron's own output (`per_step(output)`
    gives its `[T, B, C, H, W]` view)."""
    kept = {}
    handle = neuron.register_forward_hook(lambda module, args, output: kept.setdefault("spikes", output))
    with torch.enable_grad():
        logits = model(images)
    handle.remove()
    target = logits.argmax(1)
    gradient, = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), kept["spikes"])
    spikes, gradient = per_step(kept["spikes"]), per_step(gradient)
    expected = torch.relu((gradient.mean(dim=(3, 4), keepdim=True) * spikes).sum(dim=2)).transpose(0, 1).detach()
    assert expected.abs().sum() > 0
    return expected


def test_gradcam_per_timestep_equals_a_direct_computation_on_a_time_first_layer(bundled):
    expected = direct_gradcam(bundled, bundled.block3.lif, IMAGES)
    result = attribute(bundled, IMAGES, "gradcam", layer="block3.lif", T=2, time_first_input=True)
    assert result.maps.shape == (6, 2, 14, 14)
    np.testing.assert_allclose(result.maps, expected.numpy(), rtol=1e-4, atol=1e-6)


def test_unknown_layers_targets_and_methods_are_one_line_errors(bundled):
    with pytest.raises(SpikescopeError, match="block9.lif is not a spiking layer of this model; its spiking layers: "
                                              "block1.lif, block2.lif"):
        attribute(bundled, IMAGES, "gradcam", layer="block9.lif", T=2)
    with pytest.raises(SpikescopeError, match=r"--target 10 is not a class of this model \(0..9\)"):
        attribute(bundled, IMAGES, "saliency", target=10, T=2)
    with pytest.raises(SpikescopeError, match="--target label needs labelled images"):
        attribute(bundled, IMAGES, "saliency", target="label", T=2)
    with pytest.raises(SpikescopeError, match="unknown attribution method 'lrp'"):
        attribute(bundled, IMAGES, "lrp", T=2)
    result = attribute(bundled, IMAGES, "saliency", target=4, T=2)
    assert (result.targets == 4).all() and not result.per_timestep and result.maps.shape == (6, 1, 1, 28, 28)


# --- spike activation maps -------------------------------------------------------------------------------------

def test_sam_of_one_neuron_follows_the_exponential_kernel():
    gamma = 0.4
    train_of_spikes = torch.tensor([1.0, 1.0, 0.0, 1.0]).view(4, 1, 1, 1, 1)
    sam = spike_activation_map(train_of_spikes, gamma).flatten().tolist()
    d = math.exp(-gamma)
    assert sam == pytest.approx([1.0, 1.0 + d, 0.0, 1.0 + d ** 2 + d ** 3])


def test_sam_sums_channels_is_non_negative_and_zero_where_nothing_fired():
    torch.manual_seed(0)
    spikes = (torch.rand(5, 3, 4, 6, 6) < 0.3).float()
    spikes[:, :, :, :, :2] = 0  # two columns where no channel ever fires
    sam = spike_activation_map(spikes, 0.7)
    assert sam.shape == (5, 3, 6, 6) and (sam >= 0).all()
    assert (sam[..., :2] == 0).all() and (sam[spikes.sum(dim=2) == 0] == 0).all()
    by_channel = sum(spike_activation_map(spikes[:, :, c:c + 1], 0.7) for c in range(4))
    torch.testing.assert_close(sam, by_channel)


def test_sam_metric_under_a_recorder_merges_exactly_and_keeps_constant_memory(bundled):
    whole, first, second = SpikeActivationMap(), SpikeActivationMap(), SpikeActivationMap()
    batches = [IMAGES[:3], IMAGES[3:]]
    with torch.no_grad(), SpikeRecorder(bundled, metrics=[whole], capture=6) as recorder:
        for batch in batches:
            bundled(batch)
    sizes = []
    for metric, batch in ((first, batches[0]), (second, batches[1])):
        with torch.no_grad(), SpikeRecorder(bundled, metrics=[metric]):
            bundled(batch)
            sizes.append(metric.nbytes())
    assert sizes[0] == sizes[1] == whole.nbytes()
    merged = first.merge(second).compute().arrays["sam"]
    expected = whole.compute().arrays["sam"]
    for layer, mean_map in expected.items():
        np.testing.assert_allclose(merged[layer], mean_map, rtol=1e-12)
        direct = spike_activation_map(torch.from_numpy(recorder.capture.spikes(layer))).mean(dim=1)
        np.testing.assert_allclose(mean_map, direct.numpy(), rtol=1e-5)
        assert (mean_map >= 0).all() and mean_map.shape[0] == 2


def test_sam_is_zero_in_a_layer_that_never_fired():
    model = SpikingConv(1, 3)
    model.lif.threshold = 1e9
    sam = SpikeActivationMap()
    with torch.no_grad(), SpikeRecorder(model, metrics=[sam], T=2):
        model(repeat_over_time(IMAGES, 2).transpose(0, 1))
    result = sam.compute().arrays["sam"]["lif"]
    assert result.shape == (2, 28, 28) and not result.any()


# --- what the review of the adapter asked for ----------------------------------------------------------------

class StackedLogits(torch.nn.Module):
    """The bundled model with its logits repeated over T = 2 steps: `[T, B, classes]` or `[B, T, classes]`."""

    def __init__(self, model: torch.nn.Module, axis: int) -> None:
        super().__init__()
        self.model, self.axis, self.T = model, axis, 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        return torch.stack([logits, logits], dim=self.axis)


@pytest.mark.parametrize("axis", [0, 1])
def test_time_in_the_output_is_found_even_when_the_batch_has_T_images(bundled, axis):
    two = IMAGES[:2]  # K == T == 2
    expected = attribute(bundled, two, "saliency", T=2)
    result = attribute(StackedLogits(bundled, axis), two, "saliency", T=2)
    np.testing.assert_array_equal(result.predictions, expected.predictions)
    np.testing.assert_allclose(result.maps, expected.maps, rtol=1e-6)


@pytest.mark.parametrize("axis", [0, 1])
def test_time_in_the_output_is_learned_from_a_probe_batch_of_other_than_T_images(bundled, axis):
    three = IMAGES[:3]  # batches of 2 == T images and of 1
    expected = attribute(bundled, three, "saliency", T=2, batch_size=2)
    result = attribute(StackedLogits(bundled, axis), three, "saliency", T=2, batch_size=2)
    np.testing.assert_array_equal(result.predictions, expected.predictions)
    np.testing.assert_allclose(result.maps, expected.maps, rtol=1e-6)


@pytest.mark.parametrize("batch_size, passes", [(3, 1), (2, 2)])
def test_planning_runs_the_model_once_per_batch_of_the_probe(bundled, batch_size, passes):
    calls = []  # the batch of each [T, B, ...] input
    handle = bundled.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[1]))
    try:
        plan_attribution(bundled, IMAGES[:3], "sam", T=2, time_first_input=True, batch_size=batch_size)
    finally:
        handle.remove()
    assert len(calls) == passes and sum(calls) == 3


class FoldedLIF(torch.nn.Module):
    """spikescope's LIF written as users write neurons of their own: on `[T*B, ...]` folded time-major, or on
    `[B, T, ...]`, with the Dspike surrogate."""

    def __init__(self, layout: str, T: int = 3) -> None:
        super().__init__()
        self.layout, self.T = layout, T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = x.unflatten(0, (self.T, -1)) if self.layout == "time-major" else x.transpose(0, 1)
        spikes = LIF(threshold=0.3)(steps)
        return spikes.flatten(0, 1) if self.layout == "time-major" else spikes.transpose(0, 1)


class OwnNeuronNet(torch.nn.Module):
    def __init__(self, layout: str, T: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layout, self.T = layout, T
        self.conv1, self.conv2 = torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Conv2d(4, 4, 3, padding=1)
        self.fire1, self.fire2 = FoldedLIF(layout, T), FoldedLIF(layout, T)
        self.head = torch.nn.Linear(4 * 28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "time-major":
            x = self.fire1(self.conv1(x.repeat(self.T, 1, 1, 1)))  # [T*B, ...]
            x = self.fire2(self.conv2(x)).unflatten(0, (self.T, -1)).transpose(0, 1)
        else:
            folded = self.conv1(x.repeat_interleave(self.T, dim=0)).unflatten(0, (-1, self.T))  # [B, T, ...]
            x = self.fire1(folded)
            x = self.fire2(self.conv2(x.flatten(0, 1)).unflatten(0, (-1, self.T)))
        return self.head(x.flatten(2)).mean(dim=1)  # x: [B, T, ...]


@pytest.mark.parametrize("layout, options, to_steps", [
    ("time-major", {"fold": "time-major"}, lambda x: x.unflatten(0, (3, -1))),
    ("batch-first", {"batch_first": True}, lambda x: x.transpose(0, 1)),
])
def test_gradcam_equals_a_direct_computation_on_folded_and_batch_first_layers(layout, options, to_steps):
    net = OwnNeuronNet(layout).eval()
    expected = direct_gradcam(net, net.fire1, IMAGES, to_steps)
    result = attribute(net, IMAGES, "gradcam", layer="fire1", T=3, **options)
    np.testing.assert_allclose(result.maps, expected.numpy(), rtol=1e-4, atol=1e-6)


def test_modes_are_restored_when_captum_fails_midway(bundled):
    calls = []

    def failing(model, inputs):
        calls.append(model.block1.lif.training)
        if len(calls) > 3:
            raise RuntimeError("out of memory (a stand-in)")
        return model(inputs)

    with pytest.raises(RuntimeError, match="a stand-in"):
        attribute(bundled, IMAGES, "ig", T=2, run=failing)
    assert True in calls  # the neurons did run in training mode
    assert not any(m.training for m in bundled.modules())


def test_labels_outside_the_classes_and_a_layer_for_an_input_method(bundled):
    with pytest.raises(SpikescopeError, match="the labels run from 0 to 12, but the model has 10 classes"):
        attribute(bundled, IMAGES, "saliency", labels=torch.tensor([0, 1, 2, 3, 4, 12]), target="label", T=2)
    with pytest.warns(SpikescopeWarning, match="--layer block2.lif is ignored"):
        result = attribute(bundled, IMAGES, "saliency", layer="block2.lif", T=2)
    assert result.layer is None and result.info["target"] == "the prediction"


def test_the_report_thins_many_timesteps_and_layers_instead_of_failing():
    K, T = 2, 40
    rng = np.random.default_rng(0)
    sam = {f"layer{i}": rng.random((K, T, 7, 7)) for i in range(6)}
    attribution = Attribution(method="gradcam", images=rng.random((K, 1, 28, 28)), maps=rng.random((K, T, 7, 7)),
                              per_timestep=True, layer="layer5", targets=np.array([1, 2]),
                              predictions=np.array([1, 2]), labels=None, infidelity=None, sam=sam, T=T, seconds=1.0,
                              info={"gamma": 0.4, "captum": "LayerGradCam", "settings": None})
    html = attribution_section(attribution, {name: maps[0] for name, maps in sam.items()}, samples=100)
    assert "Shown: 6 of 6 layers and 16 of 40 timesteps, evenly spaced" in html
    assert len(sam_figure(sam, ["a", "b"]).data) == 6 * 16  # one image at a time, chosen in a menu
    assert len(attribution_figure(attribution).data) == K * (1 + 2 * 15)  # the input, then maps over the input
