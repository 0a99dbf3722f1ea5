"""The functional test of claim 1 (analyses/_functional.py): the functional orientation index, how an ablation table
becomes per-layer losses, the gratings control's rule and the verdict rule, on hand-worked answers."""
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analyses"))
import _functional as F  # noqa: E402


def against_controls_row(layer: str, band: str, change: float, control: float, low: float, high: float) -> dict:
    """One row of `FrequencyAblation.against_controls()` with the same accuracy and KL numbers."""
    row = {"layer": layer, "band": band}
    for column in ("accuracy_change", "kl"):
        row.update({column: change, f"{column}_control": control, f"{column}_specific": change - control,
                    f"{column}_specific_ci_low": low, f"{column}_specific_ci_high": high})
    return row


def table(rows: dict[str, dict[str, tuple]]) -> pd.DataFrame:
    """`{layer: {band: (change, control, low, high)}}` as an against_controls table."""
    return pd.DataFrame([against_controls_row(layer, band, *values) for layer, bands in rows.items()
                         for band, values in bands.items()])


def test_index_is_the_specific_difference_over_every_effect_measured():
    assert F.functional_index(0.3, -0.1, 0.4, 0.1, 0.1, 0.2) == pytest.approx(0.4 / 0.8)
    assert F.functional_index(0.0, 0.2, 0.1, 0.3, 0.1, 0.1) == pytest.approx(-0.2 / 0.6)


def test_index_stays_within_minus_one_and_one_and_is_nan_without_any_effect():
    rng = np.random.default_rng(0)
    for r_v, r_h, c_v, c_h in rng.normal(size=(1000, 4)):
        assert abs(F.functional_index(r_v - c_v, r_h - c_h, r_v, r_h, c_v, c_h)) <= 1 + 1e-12
    assert F.functional_index(1.0, 0.0, 1.0, 0.0, 0.0, 0.0) == 1.0
    assert math.isnan(F.functional_index(0.0, 0.0, 0.0, 0.0, 0.0, 0.0))


def test_an_accuracy_drop_is_a_positive_loss_and_its_interval_is_turned_round():
    found = F.dependence(table({"block1": {"axis_vertical": (-0.20, -0.05, -0.25, -0.05),
                                           "axis_horizontal": (-0.02, -0.04, -0.01, 0.05)}}), "axis", "accuracy")
    row = found.loc["block1"]
    assert (row["R_vertical"], row["C_vertical"], row["S_vertical"]) == pytest.approx((0.20, 0.05, 0.15))
    assert (row["S_vertical_low"], row["S_vertical_high"]) == pytest.approx((0.05, 0.25))
    assert row["S_horizontal"] == pytest.approx(-0.02)
    assert row["FOI"] == pytest.approx((0.15 + 0.02) / (0.20 + 0.02 + 0.05 + 0.04))


def test_kl_is_a_loss_as_it_stands_and_layers_keep_their_depth_order():
    found = F.dependence(table({"deep": {"wedge_vertical": (0.1, 0.1, -0.01, 0.01),
                                         "wedge_horizontal": (0.5, 0.1, 0.3, 0.5)},
                                "shallow": {"wedge_vertical": (0.4, 0.1, 0.2, 0.4),
                                            "wedge_horizontal": (0.1, 0.1, -0.01, 0.01)}}), "wedge", "KL")
    assert list(found.index) == ["deep", "shallow"]
    assert found.loc["deep", "FOI"] == pytest.approx(-0.4 / 0.8)
    assert found.loc["shallow", "FOI"] == pytest.approx(0.3 / 0.7)


def test_gratings_networks_depend_on_their_stripes_band_only_with_an_effect_interval_and_sign():
    vertical_stripes = {"axis_horizontal": (0.6, 0.1, 0.4, 0.6), "axis_vertical": (0.1, 0.1, -0.01, 0.01)}
    weak = {"axis_horizontal": (0.2, 0.1, -0.02, 0.22), "axis_vertical": (0.1, 0.1, -0.01, 0.01)}
    negligible = {"axis_horizontal": (2e-4, 1e-4, 5e-5, 2e-4), "axis_vertical": (1e-5, 1e-5, -1e-6, 1e-6)}
    frames = [F.dependence(table({"block1": vertical_stripes, "block2": vertical_stripes, "block3": negligible}),
                           "axis", "KL"),
              F.dependence(table({"block1": vertical_stripes, "block2": weak, "block3": vertical_stripes}),
                           "axis", "KL")]
    assert F.stripes_pass(frames, "vertical stripes").to_dict() == {"block1": 2, "block2": 1, "block3": 1}
    assert F.stripes_pass(frames, "horizontal stripes").to_dict() == {"block1": 0, "block2": 0, "block3": 0}


@pytest.mark.parametrize("trained, learned, expected", [
    ("supported", "supported", "supported, beyond the untrained networks"),
    ("supported", "inconclusive (the interval includes 0)", "not beyond the untrained networks"),
    ("supported", "contradicted", "not beyond the untrained networks"),
    ("contradicted", "supported", "not supported (dependence moves with depth the other way)"),
    ("inconclusive (the interval includes 0)", "supported", "not supported (no clear depth trend"),
])
def test_a_reading_is_supported_only_when_training_adds_the_trend(trained, learned, expected):
    assert F.functional_verdict(trained, learned).startswith(expected)
