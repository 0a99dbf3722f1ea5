"""Statistics over seeds with known answers: the sample SD (n - 1), the t interval, and changes against a negative
reference, in groupstats and in compare's Comparison (paired and unpaired)."""
import copy
import math

import pytest
import torch
from scipy import stats

import spikescope
from spikescope.checkpoint import bundled_checkpoint, load
from spikescope.compare import Comparison
from spikescope.data import load_dataset, make_loader
from spikescope.groupstats import paired_difference, summarize


def test_summarize_gives_the_sample_sd_over_seeds():
    summary = summarize([0.0, 2.0])
    assert summary["std"] == pytest.approx(math.sqrt(2), rel=1e-12)  # n - 1 = 1 in the denominator; population: 1
    half = stats.t.ppf(0.975, 1) * math.sqrt(2) / math.sqrt(2)  # t(0.975, 1) = 12.706
    assert (summary["ci_low"], summary["ci_high"]) == pytest.approx((1 - half, 1 + half), rel=1e-12)


def test_a_change_against_a_negative_reference_has_the_sign_of_the_change():
    rise = paired_difference([-0.25, -0.15], [-0.5, -0.5])  # both values rose by 0.25 and 0.35
    assert rise["mean"] == pytest.approx(0.3) and rise["percent"] == pytest.approx(60.0)
    fall = paired_difference([-0.75, -0.65], [-0.5, -0.5])
    assert fall["mean"] == pytest.approx(-0.2) and fall["percent"] == pytest.approx(-40.0)
    assert paired_difference([1.5], [1.0])["percent"] == pytest.approx(50.0)  # a positive reference alike
    assert rise["std"] == pytest.approx(math.sqrt(0.005), rel=1e-9)  # sample SD of 0.25, 0.35


def test_equal_differences_up_to_rounding_get_no_p_value():
    """-0.1 - (-0.095) and -0.09 - (-0.085) are both -0.005 but for the last bit: a t-test would give p ~ 1e-15."""
    change = paired_difference([-0.1, -0.09], [-0.095, -0.085])
    assert change["mean"] == pytest.approx(-0.005) and math.isnan(change["p_value"])
    assert paired_difference([0.015, 0.035], [-0.005, 0.005])["p_value"] == pytest.approx(
        stats.ttest_rel([0.015, 0.035], [-0.005, 0.005]).pvalue)


@pytest.fixture(scope="module")
def result():
    model, _ = load(bundled_checkpoint("baseline"), torch.device("cpu"))
    images = load_dataset("fashion-mnist-sample", "test", limit=8)
    return spikescope.analyze(model, make_loader(images, 8))


def with_oi(result, value: float):
    """A copy of an analysis whose first layer has orientation index `value`."""
    changed = copy.deepcopy(result)
    changed.layers.loc[0, "axis_OI"] = value
    return changed


def oi_change(result, reference: list[float], other: list[float], seeds: tuple[list, list]) -> dict:
    labels = [f"r{i}" for i in range(len(reference))], [f"o{i}" for i in range(len(other))]
    results = {label: with_oi(result, value) for names, values in zip(labels, (reference, other))
               for label, value in zip(names, values)}
    meta = {label: {"seed": seed} for names, group in zip(labels, seeds) for label, seed in zip(names, group)}
    comparison = Comparison({"reference": labels[0], "other": labels[1]}, results, meta)
    statistics = comparison.statistics()
    layer = result.layers.loc[0, "layer"]
    return statistics["changes"]["other"]["layers"][layer]["axis_OI"], statistics["groups"]


def test_compare_changes_against_a_negative_orientation_index_paired_and_unpaired(result):
    change, _ = oi_change(result, [-0.5], [-0.25], ([0], [0]))  # one model against one
    assert change["mean"] == pytest.approx(0.25) and change["percent"] == pytest.approx(50.0) and change["paired"]
    change, groups = oi_change(result, [-0.5, -0.3], [-0.25, -0.45], ([0, 1], [0, 1]))  # pairs (0, 0), (1, 1)
    assert change["paired"] and change["mean"] == pytest.approx(0.05) and change["percent"] == pytest.approx(12.5)
    assert groups["reference"]["layers"][result.layers.loc[0, "layer"]]["axis_OI"]["std"] == pytest.approx(
        math.sqrt(0.02), rel=1e-9)  # sample SD of -0.5 and -0.3
    change, _ = oi_change(result, [-0.5, -0.3], [-0.2], ([0, 1], [7]))  # no seed in common, sizes differ: unpaired
    assert not change["paired"]
    assert change["mean"] == pytest.approx(0.2) and change["percent"] == pytest.approx(50.0)
