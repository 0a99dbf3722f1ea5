"""The DCT spectrum, the FSTA spatial gate and SAM at their boundaries, with known answers: the one-product
(Kronecker) path and the two-pass path on either side of the size that picks them, frequency bands and wedges
on exactly their edges, FSTA's composed operator against the written-out equations where the padding reaches
into the map (odd and even DCT sizes, on both sides of the switch to the separable order), SAM's default decay."""
import math
from fractions import Fraction

import numpy as np
import pytest
import scipy.fft
import scipy.signal
import torch

from spikescope.dct import dct_basis_2d, dct_matrix
from spikescope.fsta import FSTA
from spikescope.metrics.sam import DEFAULT_GAMMA, SpikeActivationMap, spike_activation_map
from spikescope.metrics.spectrum import Spectrum, _one_product, frequency_masks


@pytest.mark.parametrize("height, width, one_product", [
    (8, 8, True), (9, 9, False), (6, 12, True), (12, 6, True), (4, 6, True), (7, 10, False), (3, 13, True)])
def test_each_path_gives_scipys_power_with_rows_as_vertical_frequencies(height, width, one_product):
    assert _one_product(height, width) is one_product  # 8 x 8 and 6 x 12 sit on the boundary HW = 4 (H + W)
    rows = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width)
    stripes = (rows % 2 == 0).float()  # horizontal stripes: variation along the height only
    spikes = torch.stack([stripes, (torch.rand(height, width, generator=torch.Generator().manual_seed(0)) < .4)
                          .float()])[None, :, None]  # [T=1, B=2, C=1, H, W]
    metric = Spectrum()
    metric.update("l", spikes)
    power = metric.states["l"]["power"][0].numpy()
    coefficients = scipy.fft.dctn(spikes[0, :, 0].double().numpy(), type=2, norm="ortho", axes=(-2, -1))
    np.testing.assert_allclose(power, (coefficients ** 2).sum(axis=0), rtol=1e-5, atol=1e-5)
    stripe_only = Spectrum()
    stripe_only.update("l", stripes[None, None, None])
    stripe_power = stripe_only.states["l"]["power"][0].numpy()
    assert stripe_power[:, 1:].max() < 1e-9 and stripe_power[1:, 0].sum() > 0.1  # u > 0, v = 0 only


@pytest.mark.parametrize("height, width", [(3, 3), (6, 6), (6, 12), (9, 9), (12, 4), (7, 7), (28, 28), (5, 15)])
def test_bands_and_wedges_put_frequencies_on_their_edges_where_the_definition_says(height, width):
    """Exact rational arithmetic: low rho < 1/3 (DC excluded), mid 1/3 <= rho < 2/3, high rho >= 2/3; the wedge
    diagonal u/H = v/W in neither wedge."""
    masks = frequency_masks(height, width)
    for u in range(height):
        for v in range(width):
            rho2 = Fraction(u, height) ** 2 + Fraction(v, width) ** 2
            expected = {"band_low": (u, v) != (0, 0) and rho2 < Fraction(1, 9),
                        "band_mid": Fraction(1, 9) <= rho2 < Fraction(4, 9), "band_high": rho2 >= Fraction(4, 9),
                        "wedge_vertical": Fraction(u, height) > Fraction(v, width),
                        "wedge_horizontal": Fraction(v, width) > Fraction(u, height)}
            assert {name: bool(masks[name][u, v]) for name in expected} == expected, (u, v)


def spatial_gate_by_the_equations(module: FSTA, summed: np.ndarray) -> np.ndarray:
    """docs/metrics.md, "FSTA", step 2, for one map: zero padding k // 2 before and (k - 1) // 2 after, correlation
    with the k^2 DCT basis images, the 7x7 fusion convolution with zero padding 3, a sigmoid."""
    k = module.dct_size
    padded = np.pad(summed, ((k // 2, (k - 1) // 2), (k // 2, (k - 1) // 2)))
    rows = module.dct_rows.double().numpy()  # the module's DCT matrix (kept in float32), as the formula gives it
    maps = np.stack([scipy.signal.correlate2d(padded, np.outer(rows[u], rows[v]), mode="valid")
                     for u in range(k) for v in range(k)])
    weight = module.frequency_fusion.weight.detach().double().numpy()[0]  # [k^2, 7, 7]
    fused = sum(scipy.signal.correlate2d(np.pad(m, 3), w, mode="valid") for m, w in zip(maps, weight))
    return 1 / (1 + np.exp(-fused))


@pytest.mark.parametrize("k, height, width", [
    (7, 1, 1), (7, 3, 5), (7, 8, 2), (6, 1, 4), (6, 5, 5), (6, 7, 3),  # padding reaches across the whole map
    (6, 2, 172), (6, 2, 173), (7, 2, 218), (7, 2, 219)])  # the last composed width, the first separable one
def test_the_spatial_gate_equals_the_equations_where_padding_reaches_into_the_map(k, height, width):
    torch.manual_seed(k * height + width)
    module = FSTA(None, T=2, dct_size=k).double()
    with torch.no_grad():
        module.frequency_fusion.weight.normal_()
    torch.testing.assert_close(module.dct_rows.double(), dct_matrix(k), rtol=0, atol=1e-7)
    torch.testing.assert_close(torch.einsum("uh,vw->uvhw", module.dct_rows, module.dct_rows).reshape(k * k, k, k),
                               dct_basis_2d(k, dtype=torch.float64), rtol=0, atol=1e-6)  # channel u * k + v
    composed, separable = module.fusion_macs(height, width)
    assert (composed <= separable) is (width < {6: 173, 7: 219}[k])
    summed = torch.randn(2, 1, height, width, dtype=torch.float64)
    with torch.no_grad():
        gate = module.spatial_weight(summed)
    for b in range(2):
        np.testing.assert_allclose(gate[b, 0].numpy(), spatial_gate_by_the_equations(module, summed[b, 0].numpy()),
                                   rtol=1e-10, atol=1e-12)


def test_sam_decays_by_exp_minus_one_half_per_timestep_by_default():
    assert DEFAULT_GAMMA == 0.5  # Kim & Panda's released code (docs/metrics.md, "Attribution")
    train = torch.tensor([1.0, 1.0, 0.0, 1.0, 2.0]).view(5, 1, 1, 1, 1)  # a neuron firing at 0, 1, 3 and twice at 4
    d = math.exp(-0.5)
    trace = [1, d + 1, d * d + d, d ** 3 + d ** 2 + 1, d ** 4 + d ** 3 + d + 2]
    expected = [s * z for s, z in zip([1, 1, 0, 1, 2], trace)]
    assert spike_activation_map(train).flatten().tolist() == pytest.approx(expected, rel=1e-6)
    metric = SpikeActivationMap()
    metric.update("l", torch.cat([train, torch.zeros_like(train)], dim=1))  # a second, silent sample
    assert metric.compute().arrays["sam"]["l"].flatten().tolist() == pytest.approx([e / 2 for e in expected],
                                                                                   rel=1e-6)
