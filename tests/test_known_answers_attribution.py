"""Attribution's signs and modes, with known answers: the direction from the baseline (integrated gradients,
occlusion), the perturbation infidelity applies (x - I), and every module's mode after `surrogate_gradients`."""
import numpy as np
import pytest
import torch
from torch import nn

from spikescope.attribution import attribute
from spikescope.captum_adapter import surrogate_gradients
from spikescope.captum_methods import INFIDELITY_NOISE, INFIDELITY_SAMPLES
from spikescope.neurons import LIF

BASELINE = 0.25


def weight(shape: torch.Size) -> torch.Tensor:
    """Weights of both signs, one per input element, so that a flipped sign shows."""
    return torch.linspace(-1, 1, shape[1:].numel()).view(1, *shape[1:])


def quadratic_logit(x: torch.Tensor) -> torch.Tensor:
    return (weight(x.shape) * (x * x + x)).flatten(1).sum(1)


class Quadratic(nn.Module):
    """Logits (f, -f) with f(x) = sum w (x^2 + x): IG from a baseline b is exactly w (x^2 + x - b^2 - b)
    (Gauss-Legendre integrates the linear gradient exactly), which changes sign with x - b and differs for -b.
    A LIF watches the input, so that the network has a spiking layer to find; it does not change the logits."""

    def __init__(self) -> None:
        super().__init__()
        self.lif = LIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes = self.lif(x.unsqueeze(0).expand(2, *x.shape))
        logit = quadratic_logit(x) + 0 * spikes.sum()
        return torch.stack([logit, -logit], dim=1)


IMAGES = torch.rand(3, 2, 6, 6, generator=torch.Generator().manual_seed(0))


def drops(images: torch.Tensor) -> np.ndarray:
    """`w (x^2 + x - b^2 - b)` per element: the logit's drop when that element goes from the image to the
    baseline."""
    return (weight(images.shape) * (images ** 2 + images - BASELINE ** 2 - BASELINE)).numpy()


def test_integrated_gradients_point_from_the_baseline_to_the_image():
    result = attribute(Quadratic(), IMAGES, "ig", target=0, baseline=BASELINE, infidelity=False)
    assert result.maps.shape == (3, 1, 2, 6, 6)  # the model repeats its input inside: one map for all timesteps
    np.testing.assert_allclose(result.maps[:, 0], drops(IMAGES), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("side", [14, 6])
def test_occlusion_is_the_logit_drop_when_a_window_takes_the_baseline_averaged_over_the_windows(side):
    """Windows span every channel, are a seventh of the side (at least 1) and move by half of that (at least 1):
    on 14 x 14 images 2 x 2 windows at stride 1, so an inner element is covered by four."""
    images = torch.rand(2, 2, side, side, generator=torch.Generator().manual_seed(1))
    result = attribute(Quadratic(), images, "occlusion", target=0, baseline=BASELINE, infidelity=False)
    window = max(1, side // 7)
    per_position = drops(images).sum(axis=1)  # [K, H, W]: a window covers both channels
    total, covered = np.zeros_like(per_position), np.zeros(per_position.shape[1:])
    for top in range(side - window + 1):
        for left in range(side - window + 1):
            rows, columns = slice(top, top + window), slice(left, left + window)
            total[:, rows, columns] += per_position[:, rows, columns].sum(axis=(1, 2))[:, None, None]
            covered[rows, columns] += 1
    expected = np.repeat((total / covered)[:, None], 2, axis=1)
    np.testing.assert_allclose(result.maps[:, 0], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["ig", "saliency", "occlusion"])
def test_infidelity_perturbs_the_input_as_x_minus_i(method):
    """Captum's normalised infidelity recomputed from the same perturbations (spikescope draws them from a
    generator seeded 0; Captum repeats each image INFIDELITY_SAMPLES times, image by image). With x + I in
    place of x - I the numbers differ by 10-35 % on these images."""
    result = attribute(Quadratic(), IMAGES, method, target=0, baseline=BASELINE, infidelity=True)
    attributions = torch.from_numpy(result.maps[:, 0]).double()
    noise = torch.randn((len(IMAGES) * INFIDELITY_SAMPLES, *IMAGES.shape[1:]),
                        generator=torch.Generator().manual_seed(0)) * INFIDELITY_NOISE
    images = IMAGES.repeat_interleave(INFIDELITY_SAMPLES, dim=0)
    drop = (quadratic_logit(images) - quadratic_logit(images - noise)).double().view(len(IMAGES), -1)
    predicted = (attributions.repeat_interleave(INFIDELITY_SAMPLES, dim=0) * noise).flatten(1).sum(1)
    predicted = predicted.view(len(IMAGES), -1)
    scale = (predicted * drop).sum(1) / (predicted * predicted).sum(1)  # the best-fitting scale, per image
    expected = ((scale[:, None] * predicted - drop) ** 2).mean(1).numpy()
    np.testing.assert_allclose(result.infidelity, expected, rtol=1e-4)


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm, self.drop, self.lif, self.frozen = nn.BatchNorm2d(2), nn.Dropout(0.5), LIF(), nn.BatchNorm2d(2)


def test_surrogate_gradients_restores_every_modules_own_mode_also_after_an_error():
    model = Mixed().train()
    model.frozen.eval()  # a module kept in eval() inside a training model
    before = {name: module.training for name, module in model.named_modules()}
    with surrogate_gradients(model):
        assert not model.norm.training and not model.drop.training and model.lif.training
    assert {name: module.training for name, module in model.named_modules()} == before
    model.eval()
    model.drop.train()
    before = {name: module.training for name, module in model.named_modules()}
    with pytest.raises(RuntimeError), surrogate_gradients(model):
        raise RuntimeError("inside")
    assert {name: module.training for name, module in model.named_modules()} == before


def test_attribute_leaves_the_network_in_eval_neurons_included():
    model = Quadratic().train()
    attribute(model, IMAGES[:1], "saliency", target=0, infidelity=False)
    assert not any(module.training for module in model.modules())
