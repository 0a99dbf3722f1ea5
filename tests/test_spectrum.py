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
