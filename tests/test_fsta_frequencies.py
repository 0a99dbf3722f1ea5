"""FSTA's frequencies: ablating each DCT basis and temporal descriptor of every FSTA module (known answers)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from spikescope.analyze import default_run
from spikescope.checkpoint import bundled_checkpoint
from spikescope.data import make_loader
from spikescope.errors import SpikescopeError
from spikescope.frequency.predictions import pass_logits
from spikescope.frequency.fsta_frequencies import (IDENTITY, REFERENCE, SPATIAL, SPATIAL_GATE, TEMPORAL,
                                                   TEMPORAL_GATE, Component, FstaFrequencies, ablated, basis_name,
                                                   components, fsta_frequencies, gain_change)
from spikescope.fsta import FSTA
from spikescope.pipeline import prepare_file
from spikescope.report.fsta_frequencies import fsta_section

SILENT = (3, 1)  # the basis whose fusion weights the tests zero at block2 (its transpose (1, 3) keeps them)


@pytest.fixture(scope="module")
def prepared():
    """The bundled FSTA model on 6 sample images, with block2's fusion weights on basis SILENT zeroed."""
    prepared = prepare_file(bundled_checkpoint("fsta"), limit=6)
    model = copy.deepcopy(prepared.model).eval()
    fsta = model.block2.lif.fsta
    with torch.no_grad():
        fsta.frequency_fusion.weight[:, SILENT[0] * fsta.dct_size + SILENT[1]] = 0
    return model, prepared.dataset, prepared.T


@pytest.fixture(scope="module")
def result(prepared):
    model, dataset, T = prepared
    return fsta_frequencies(model, make_loader(dataset, 6), T=T)


def _current(model, inputs, fsta: FSTA) -> torch.Tensor:
    """The current `fsta` receives in an unablated pass."""
    kept = {}
    hook = fsta.register_forward_pre_hook(lambda module, args: kept.setdefault("x", args[0]))
    with torch.no_grad():
        pass_logits(model, default_run, inputs, fsta.T)
    hook.remove()
    return kept["x"]


def _gain_from_gates(fsta: FSTA, x: torch.Tensor, w_t: torch.Tensor, w_s: torch.Tensor | None = None) -> torch.Tensor:
    """docs/metrics.md's equations: `(1 + w_t) (m + n (1 + w_s)) / 2`, `w_s` from the time-averaged channel sum of
    `X (1 + w_t)` unless given."""
    temporal = (1 + w_t)[:, :, None, None, None]
    if w_s is None:
        w_s = fsta.spatial_weight((x.sum(dim=2, keepdim=True) * temporal).mean(dim=0))
    return temporal * (fsta.m + fsta.n * (1 + w_s)).unsqueeze(0) / 2


def test_ablating_nothing_reproduces_the_unablated_predictions_exactly(result):
    for position in result.positions:
        for measure in ("accuracy_change", "logit_change", "kl", "gain_change"):
            assert np.all(result.per_image(position, IDENTITY, measure) == 0), (position, measure)


def test_zeroing_a_basis_whose_fusion_weights_are_zero_changes_nothing(result):
    silent, transposed = basis_name(*SILENT), basis_name(*SILENT[::-1])
    for measure in ("logit_change", "kl", "gain_change"):
        assert np.all(result.per_image("block2.lif.fsta", silent, measure) == 0), measure
    assert np.all(result.per_image("block2.lif.fsta", transposed, "gain_change") > 0)
    assert np.all(result.per_image("block1.lif.fsta", silent, "gain_change") > 0)


def test_zeroing_every_basis_is_a_spatial_gate_fed_zeros(prepared):
    model, dataset, _ = prepared
    fsta = model.block1.lif.fsta
    x = _current(model, next(iter(make_loader(dataset, 4)))[0], fsta)
    w_t = fsta.temporal_weight(x.mean(dim=(-2, -1)), x.amax(dim=(-2, -1)))
    with torch.no_grad(), ablated(fsta, Component(SPATIAL_GATE, REFERENCE)):
        gain = fsta.gain(x)
        assert torch.equal(fsta.spatial_weight(torch.randn(2, 1, 9, 9)), torch.full((2, 1, 9, 9), 0.5))
    expected = _gain_from_gates(fsta, x, w_t, w_s=torch.full((4, 1, 28, 28), 0.5))
    torch.testing.assert_close(gain, expected.detach(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("descriptor", ["mean", "max", TEMPORAL_GATE])
def test_zeroing_a_descriptor_leaves_the_temporal_gate_the_other_one(prepared, descriptor):
    model, dataset, _ = prepared
    fsta = model.block3.lif.fsta
    x = _current(model, next(iter(make_loader(dataset, 4)))[0], fsta)
    mean, maximum = x.mean(dim=(-2, -1)), x.amax(dim=(-2, -1))
    kept = {"mean": (torch.zeros_like(mean), maximum), "max": (mean, torch.zeros_like(maximum)),
            TEMPORAL_GATE: (torch.zeros_like(mean), torch.zeros_like(maximum))}[descriptor]
    with torch.no_grad():
        w_t = fsta.temporal_weight(*kept)
        expected = _gain_from_gates(fsta, x, w_t)
        with ablated(fsta, Component(descriptor, REFERENCE if descriptor == TEMPORAL_GATE else TEMPORAL)):
            gain = fsta.gain(x)
    if descriptor == TEMPORAL_GATE:
        assert torch.equal(w_t, torch.full_like(w_t, 0.5))
    torch.testing.assert_close(gain, expected, rtol=1e-6, atol=1e-7)
    assert not torch.equal(gain, fsta.gain(x).detach())  # the ablation was undone and did change something


def test_ablation_restores_the_parameters_exactly():
    fsta = FSTA(None, T=2)
    before = {name: p.clone() for name, p in fsta.named_parameters()}
    for component in components(fsta):
        with ablated(fsta, component):
            pass
    assert all(torch.equal(before[name], p) for name, p in fsta.named_parameters())


def test_stripes_along_the_height_are_read_by_vertical_frequency_bases():
    fsta = FSTA(None, T=1, branches="spatial")
    with torch.no_grad():
        fsta.frequency_fusion.weight.zero_()
        fsta.frequency_fusion.weight[0, :, 3, 3] = 0.1  # every basis, centre tap only
    rows = torch.tensor([(-1.0) ** h for h in range(24)])
    x = rows[None, None, None, :, None].expand(1, 1, 1, 24, 24).contiguous()  # varies along the height only
    with torch.no_grad():
        gain = fsta.gain(x)
        change = {}
        for u, v in ((6, 0), (0, 6)):
            with ablated(fsta, Component(basis_name(u, v), SPATIAL, u, v)):
                change[u, v] = float(gain_change(gain, fsta.gain(x))[0])
    assert change[6, 0] > 10 * change[0, 6] > 0  # (0, 6) only reads the zero-padded left and right borders


def test_the_grid_puts_vertical_frequency_in_rows(result):
    effects = result.effects().set_index(["position", "component"])
    grid = result.grid("block1.lif.fsta", "gain_change")
    assert grid.shape == (7, 7)
    for u, v in ((1, 5), (5, 1), (0, 6)):
        assert grid[u, v] == effects.loc[("block1.lif.fsta", basis_name(u, v)), "gain_change_mean"]
    assert result.top("block2.lif.fsta", "gain_change", 49)[-1][:2] == SILENT


def test_effects_table_has_every_position_and_component(result):
    effects = result.effects()
    assert list(dict.fromkeys(effects["position"])) == [f"block{i}.lif.fsta" for i in range(1, 6)]
    assert len(effects) == 5 * (49 + 2 + 2 + 1)
    assert set(effects["kind"]) == {"spatial-basis", "temporal-descriptor", "reference"}
    assert (effects["images"] == 6).all()
    basis = effects[effects["component"] == "basis_2_5"].iloc[0]
    assert (basis["u"], basis["v"]) == (2, 5)


def test_section_names_each_position_and_its_strongest_basis(result):
    section = fsta_section(result)
    for index, position in enumerate(result.positions):
        u, v, _ = result.top(position, "gain_change", 1)[0]
        assert f"{position} draws most on (u, v) = ({u}, {v})" in section
        assert f'id="figure-fsta-frequencies-{index}"' in section


def test_a_model_without_fsta_is_refused():
    baseline = prepare_file(bundled_checkpoint("baseline"), limit=2)
    with pytest.raises(SpikescopeError, match="no FSTA module"):
        fsta_frequencies(baseline.model, make_loader(baseline.dataset, 2))


def test_merged_halves_equal_the_whole(prepared, result):
    model, dataset, T = prepared
    images, labels = next(iter(make_loader(dataset, 6)))
    halves = [fsta_frequencies(model, [(images[part], labels[part])], T=T) for part in (slice(0, 3), slice(3, 6))]
    merged = FstaFrequencies.merge(halves)
    assert merged.info["images"] == 6
    for position in result.positions:
        np.testing.assert_array_equal(merged.correct[position], result.correct[position])
        np.testing.assert_allclose(merged.gain[position], result.gain[position], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(merged.kl[position], result.kl[position], rtol=1e-4, atol=1e-7)
