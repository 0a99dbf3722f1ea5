"""The fast paths behind the metrics give the answers of the slow, obvious computations they replaced."""
import numpy as np
import pytest
import scipy.fft
import torch
from torch import nn

import spikescope
from spikescope.metrics.base import spike_counts, zero_one
from spikescope.metrics.spectrum import Spectrum
from spikescope.models.layers import over_time
from spikescope.neurons import LIF
from spikescope.energy.geometry import ConvSpec, conv_geometry


@pytest.mark.parametrize("values, expected", [
    ([0.0, 1.0, 1.0], True), ([-0.0, 1.0], True), ([0.0, 0.5], False), ([1 - 2 ** -24], False),
    ([2 ** -149], False), ([2.0], False), ([-1.0], False), ([float("nan"), 1.0], False), ([float("inf")], False),
])
def test_zero_one_is_true_exactly_for_zeros_and_ones(values, expected):
    for dtype in (torch.float32, torch.float64):
        assert zero_one(torch.tensor(values, dtype=dtype)) is expected


def test_zero_one_and_spike_counts_handle_every_dtype():
    assert zero_one(torch.tensor([0, 1], dtype=torch.int64)) and not zero_one(torch.tensor([0, 2]))
    assert zero_one(torch.tensor([True, False])) and zero_one(torch.zeros(0))
    assert zero_one(torch.tensor([0.0, 1.0], dtype=torch.bfloat16))
    assert not zero_one(torch.tensor([0.0, 0.99], dtype=torch.float16))
    assert not zero_one(torch.tensor([1j]))
    assert spike_counts(torch.tensor([0.0, 3.0])) and not spike_counts(torch.tensor([0.5]))
    assert not spike_counts(torch.tensor([-1])) and not spike_counts(torch.tensor([float("nan")]))


def brute_force_fan_out(conv: nn.Module, sample_shape: tuple[int, ...]) -> torch.Tensor:
    """How many (output, weight) pairs each input element reaches: the gradient of the summed output of the
    full convolution with all-ones weights."""
    x = torch.ones(1, *sample_shape, dtype=torch.float64, requires_grad=True)
    weight = torch.ones_like(conv.weight, dtype=torch.float64)
    double = conv.to(torch.float64)
    if isinstance(conv, nn.modules.conv._ConvTransposeNd):
        transposed = {1: torch.nn.functional.conv_transpose1d, 2: torch.nn.functional.conv_transpose2d,
                      3: torch.nn.functional.conv_transpose3d}[len(conv.kernel_size)]
        out = transposed(x, weight, None, conv.stride, conv.padding, conv.output_padding, conv.groups, conv.dilation)
    else:
        out = double._conv_forward(x, weight, None)
    out.sum().backward()
    return x.grad[0]


@pytest.mark.parametrize("conv, shape", [
    (nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), (4, 9, 8)),
    (nn.Conv2d(4, 8, (3, 5), stride=(2, 1), padding=(0, 2), dilation=(1, 2), groups=4), (4, 11, 13)),
    (nn.Conv2d(3, 5, 3, padding=1, padding_mode="circular"), (3, 7, 7)),
    (nn.Conv2d(3, 5, 3, padding=1, padding_mode="reflect"), (3, 7, 7)),
    (nn.Conv2d(3, 5, 3, padding="same", dilation=2), (3, 7, 7)),
    (nn.Conv1d(3, 4, 5, stride=2, padding=2), (3, 17)),
    (nn.Conv3d(2, 4, 3, padding=1, stride=(1, 2, 2)), (2, 5, 6, 7)),
    (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2), (4, 5, 5)),
    (nn.ConvTranspose1d(3, 4, 4, stride=2, padding=1), (3, 9)),
    (nn.ConvTranspose3d(2, 4, 3, stride=2, padding=1), (2, 3, 4, 5)),
])
def test_fan_out_measured_on_one_channel_equals_the_full_convolution_count(conv, shape):
    fan_out = conv_geometry(ConvSpec.of_module(conv), torch.Size(shape), torch.device("cpu"))[0]
    assert torch.equal(fan_out.contiguous(), brute_force_fan_out(conv, shape))


@pytest.mark.parametrize("height, width", [(7, 7), (8, 4), (1, 6), (5, 12), (11, 13), (28, 28)])
def test_power_of_every_map_size_equals_scipy_dctn_in_float64(height, width):
    torch.manual_seed(height * width)
    spikes = (torch.rand(2, 5, 3, height, width) < 0.3).float()
    metric = Spectrum()
    metric.update("layer", spikes)
    coefficients = scipy.fft.dctn(spikes.numpy().astype(np.float64), type=2, norm="ortho", axes=(-2, -1))
    expected = (coefficients ** 2).sum(axis=(1, 2))
    np.testing.assert_allclose(metric.states["layer"]["power"].numpy(), expected, rtol=2e-6, atol=1e-5)
    assert torch.equal(metric.states["layer"]["squares"], spikes.sum(dim=(1, 2, 3, 4)).double())


class SpikesIntoConv(nn.Module):
    """conv -> LIF -> conv -> LIF; with `halve`, from the second call on, the first spikes are scaled in place
    before the second conv reads them (the first call, which the recorder buffers, reads them unchanged)."""

    def __init__(self, halve: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.T, self.halve, self.calls = 2, halve, 0
        self.conv1, self.lif1 = nn.Conv2d(1, 4, 3, padding=1), LIF()
        self.conv2, self.lif2 = nn.Conv2d(4, 2, 3, padding=1), LIF()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.unsqueeze(0).expand(self.T, *images.shape) * 4
        spikes = self.lif1(over_time(self.conv1, x))
        self.calls += 1
        if self.halve and self.calls > 1:
            spikes.mul_(0.5)
        return self.lif2(over_time(self.conv2, spikes)).flatten(2).mean(dim=(0, 2))


def test_a_conv_reading_spikes_unchanged_is_costed_by_them_and_one_reading_them_changed_in_place_is_analog():
    images = torch.rand(6, 1, 8, 8)
    batches = [images[:3], images[3:]]  # the second batch is recorded live, as every batch after the first
    plain = spikescope.analyze(SpikesIntoConv(halve=False), batches, capture=6)
    row = plain.energy.set_index("layer").loc["conv2"]
    spikes = torch.from_numpy(plain.captured["lif1"]).float()  # [T, 6, 4, 8, 8]
    fan_out = conv_geometry(ConvSpec.of_module(SpikesIntoConv(False).conv2), spikes.shape[2:], torch.device("cpu"))[0]
    assert row["input"] == "spikes" and spikes.sum() > 0
    assert row["sops_per_image"] == pytest.approx(float((spikes.sum(dim=(0, 1)).double() * fan_out).sum()) / 6,
                                                  rel=1e-12)
    halved = spikescope.analyze(SpikesIntoConv(halve=True), batches).energy.set_index("layer").loc["conv2"]
    assert halved["input"] == "analog" and halved["sops_per_image"] == 0 and halved["macs_per_image"] > 0
