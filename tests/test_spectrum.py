import numpy as np
import pytest
import scipy.fft
import torch

from spikescope.data import grating
from spikescope.metrics.spectrum import Spectrum, frequency_masks, orientation_summary, spectral_cosine


def stripes(orientation: int, size: int = 28, cycles: float = 4.0) -> torch.Tensor:
    """Binary stripes as spikes `[T=2, B=3, C=2, H, W]` (orientation as in `data.grating`)."""
    image = torch.from_numpy(grating(size, orientation, cycles, phase=0.3) > 0.5).float()
    return image.expand(2, 3, 2, size, size).clone()


def spectrum_row(spikes: torch.Tensor) -> dict:
    metric = Spectrum()
    metric.update("layer", spikes)
    return metric.compute().layers.iloc[0].to_dict()


def test_vertical_stripes_put_their_energy_in_horizontal_frequencies():
    row = spectrum_row(stripes(0))
    assert row["axis_OI"] < -0.9 and row["wedge_OI"] < -0.9
    power = Spectrum()
    power.update("layer", stripes(0))
    p = power.states["layer"]["power"].sum(0)
    assert p[1:, :].sum() < 1e-6 * p.sum()  # no vertical frequency at all: constant along the height


def test_horizontal_stripes_put_their_energy_in_vertical_frequencies():
    row = spectrum_row(stripes(1))
    assert row["axis_OI"] > 0.9 and row["wedge_OI"] > 0.9


def test_diagonal_stripes_are_balanced():
    row = spectrum_row(stripes(2))
    assert abs(row["wedge_OI"]) < 0.05


def test_a_constant_map_has_only_dc():
    row = spectrum_row(torch.ones(2, 1, 3, 9, 9))
    assert row["dc_fraction"] == pytest.approx(1.0, abs=1e-9)
    assert np.isnan(row["axis_OI"]) and np.isnan(row["band_low"])


def test_power_equals_scipy_dctn_squared():
    spikes = (torch.rand(3, 4, 2, 11, 13) < 0.3).float()
    metric = Spectrum()
    metric.update("layer", spikes)
    coefficients = scipy.fft.dctn(spikes.numpy().astype(np.float64), type=2, norm="ortho", axes=(-2, -1))
    expected = (coefficients ** 2).sum(axis=(1, 2))
    np.testing.assert_allclose(metric.states["layer"]["power"].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_parseval_total_power_equals_the_number_of_spikes():
    spikes = (torch.rand(4, 8, 5, 14, 14) < 0.2).float()
    metric = Spectrum()
    metric.update("layer", spikes)
    assert metric.states["layer"]["power"].sum().item() == pytest.approx(spikes.sum().item(), rel=1e-6)
    assert metric.compute().layers.loc[0, "parseval_error"] < 1e-6


def test_wedge_split_of_a_non_square_map_compares_normalised_frequencies():
    masks = frequency_masks(4, 8)
    assert masks["wedge_vertical"][1, 1]  # 1/4 > 1/8
    assert not masks["wedge_vertical"][1, 2] and not masks["wedge_horizontal"][1, 2]  # 1/4 == 2/8: diagonal
    assert masks["wedge_horizontal"][1, 3]
    assert not (masks["wedge_vertical"] & masks["wedge_horizontal"]).any()


def test_radial_bands_share_all_non_dc_power():
    power = np.random.default_rng(0).random((10, 12))
    summary = orientation_summary(power)
    assert summary["band_low"] + summary["band_mid"] + summary["band_high"] == pytest.approx(1.0)


def test_spectral_cosine_ignores_how_much_a_timestep_fires():
    pattern = np.random.default_rng(1).random((7, 7))
    power = np.stack([pattern, 3 * pattern, np.roll(pattern, 3)])
    cosine = spectral_cosine(power)
    assert cosine[0, 1] == pytest.approx(1.0) and cosine[0, 2] < 0.99


def test_spectral_cosine_without_dc_sees_differences_that_a_large_dc_hides():
    a, b = np.zeros((4, 4)), np.zeros((4, 4))
    a[0, 0] = b[0, 0] = 100.0
    a[0, 1], b[1, 0] = 1.0, 1.0  # different orientation, same DC
    power = np.stack([a, b])
    assert spectral_cosine(power)[0, 1] > 0.99
    assert spectral_cosine(power, include_dc=False)[0, 1] == pytest.approx(0.0)


def test_linear_layer_spikes_carry_no_spectrum():
    metric = Spectrum()
    metric.update("fc", torch.ones(2, 3, 10))
    assert metric.compute().layers.empty


def all_power_at(u, v, height, width):
    """A power spectrum with all of its (non-DC) power at the single frequency `(u, v)`."""
    power = np.zeros((height, width))
    power[u, v] = 5.0
    return power


def band_of(u, v, height, width):
    """The radial band that gets 100 % of a single-frequency spectrum, checked to be the only one."""
    summary = orientation_summary(all_power_at(u, v, height, width))
    shares = {band: summary[f"band_{band}"] for band in ("low", "mid", "high")}
    assert sorted(shares.values()) == [0.0, 0.0, 1.0], shares
    return max(shares, key=shares.get)


@pytest.mark.parametrize("u, v, size, band", [
    (1, 0, 6, "low"),      # rho = 1/6
    (1, 1, 6, "low"),      # rho = sqrt(2)/6 = 0.236
    (9, 0, 30, "low"),     # rho = 0.3, just below 1/3
    (7, 7, 30, "low"),     # rho = sqrt(98)/30 = 0.330, just below 1/3 off the axes
    (2, 0, 6, "mid"),      # rho = 1/3 exactly: the edge belongs to mid
    (0, 2, 6, "mid"),
    (1, 0, 3, "mid"),      # rho = 1/3 on a 3x3 map
    (8, 6, 30, "mid"),     # rho = sqrt(64 + 36)/30 = 1/3 exactly, off the axes
    (2, 2, 6, "mid"),      # rho = sqrt(8)/6 = 0.471
    (19, 0, 30, "mid"),    # rho = 0.633, just below 2/3
    (14, 14, 30, "mid"),   # rho = sqrt(392)/30 = 0.660, just below 2/3 off the axes
    (4, 0, 6, "high"),     # rho = 2/3 exactly: the edge belongs to high
    (0, 2, 3, "high"),     # rho = 2/3 on a 3x3 map
    (16, 12, 30, "high"),  # rho = sqrt(256 + 144)/30 = 2/3 exactly, off the axes
    (3, 3, 6, "high"),     # rho = sqrt(18)/6 = 0.707
    (5, 5, 6, "high"),     # the highest frequency, rho = 1.18
])
def test_a_single_frequency_puts_all_of_its_power_in_the_band_of_its_normalised_radius(u, v, size, band):
    assert band_of(u, v, size, size) == band


@pytest.mark.parametrize("u, v, height, width, band", [
    (0, 1, 3, 6, "low"),   # rho = 1/6
    (1, 0, 3, 6, "mid"),   # rho = 1/3: one step along the short side
    (0, 2, 3, 6, "mid"),   # rho = 2/6 = 1/3: two steps along the long side
    (1, 1, 3, 6, "mid"),   # rho = sqrt(1/9 + 1/36) = 0.373
    (2, 0, 3, 6, "high"),  # rho = 2/3
    (0, 4, 3, 6, "high"),  # rho = 4/6 = 2/3
    (0, 3, 3, 6, "mid"),   # rho = 1/2
    (3, 0, 6, 3, "mid"),   # the transposed map: rho = 1/2
    (1, 0, 6, 3, "low"),   # rho = 1/6
    (0, 1, 6, 3, "mid"),   # rho = 1/3
])
def test_radial_bands_of_non_square_maps_normalise_each_axis_by_its_own_length(u, v, height, width, band):
    assert band_of(u, v, height, width) == band


@pytest.mark.parametrize("u, v, height, width, wedge_oi", [
    (1, 1, 4, 8, 1.0),    # u/H = 1/4 > v/W = 1/8: vertical, although u == v
    (2, 3, 4, 8, 1.0),    # 2/4 > 3/8: vertical, although u < v
    (1, 3, 4, 8, -1.0),   # 1/4 < 3/8: horizontal
    (3, 2, 8, 4, -1.0),   # 3/8 < 2/4 on the tall map: horizontal, although u > v
    (1, 1, 8, 4, -1.0),   # 1/8 < 1/4: horizontal
    (3, 0, 8, 4, 1.0),    # on the vertical axis
    (0, 3, 8, 4, -1.0),   # on the horizontal axis
])
def test_wedge_split_of_a_single_frequency_on_a_non_square_map_uses_u_over_H_against_v_over_W(
        u, v, height, width, wedge_oi):
    summary = orientation_summary(all_power_at(u, v, height, width))
    assert summary["wedge_OI"] == wedge_oi
    assert summary["wedge_E_vert" if wedge_oi > 0 else "wedge_E_horz"] == 5.0


@pytest.mark.parametrize("u, v, height, width", [(1, 2, 4, 8), (2, 1, 8, 4), (3, 3, 6, 6)])
def test_a_single_frequency_on_the_normalised_diagonal_belongs_to_neither_wedge(u, v, height, width):
    summary = orientation_summary(all_power_at(u, v, height, width))
    assert summary["wedge_E_vert"] == 0 and summary["wedge_E_horz"] == 0
    assert np.isnan(summary["wedge_OI"])


def test_the_input_images_own_orientation_uses_the_spike_maps_definition():
    from spikescope.data import grating
    from spikescope.metrics.spectrum import image_orientation

    vertical = torch.tensor(np.stack([grating(28, 0, 4, 0.3), grating(28, 0, 3, 1.1)]))[:, None]  # [N, 1, H, W]
    horizontal = vertical.transpose(-2, -1)
    assert image_orientation(vertical)["axis_OI"] < -0.99 and image_orientation(horizontal)["axis_OI"] > 0.99
    mixed = torch.cat([vertical, horizontal])
    assert abs(image_orientation(mixed)["axis_OI"]) < 1e-6  # equal energy both ways (float32 rounding)


def test_a_channel_averaged_spectrum_is_the_power_of_the_mean_map():
    from spikescope.metrics.spectrum import Spectrum

    spikes = (torch.rand(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    averaged = Spectrum(channel_mean=True)
    averaged.update("layer", spikes)
    plain = Spectrum()
    plain.update("layer", spikes.mean(dim=2, keepdim=True))
    torch.testing.assert_close(averaged.states["layer"]["power"], plain.states["layer"]["power"])
    per_map = Spectrum()
    per_map.update("layer", spikes)
    assert not torch.allclose(per_map.states["layer"]["power"], averaged.states["layer"]["power"])
