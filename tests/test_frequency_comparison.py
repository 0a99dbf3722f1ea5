"""Frequency dependence compared across models and seeds: the change is the paired difference of each model's
specific effect, a model compared with itself changes by nothing, and the folder is written whole."""
import json

import numpy as np
import pandas as pd
import pytest

import spikescope
from spikescope.checkpoint import bundled_checkpoint, load
from spikescope.data import make_loader
from spikescope.frequency.comparison import compare_frequency
from spikescope.pipeline import prepare_file

OPTIONS = dict(data="fashion-mnist-sample", limit=40, batch_size=20, layers=["block5.lif"], bands="axis", draws=1)


@pytest.fixture(scope="module")
def lone(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "report"
    models = [bundled_checkpoint("baseline"), bundled_checkpoint("fsta")]
    return compare_frequency(models, labels=["baseline", "fsta"], out=out, **OPTIONS)


def test_the_change_is_the_difference_of_each_models_own_ablation(lone):
    comparison, files = lone
    own = {}
    for name in ("baseline", "fsta"):
        prepared = prepare_file(bundled_checkpoint(name), limit=40)
        own[name] = spikescope.frequency_ablation(prepared.model, make_loader(prepared.dataset, 20), T=prepared.T,
                                                  layers=["block5.lif"], bands="axis", draws=1).against_controls()
    stats = comparison.statistics().set_index(["group", "band", "measure"])
    for band in ("axis_vertical", "axis_horizontal"):
        expected = [float(own[name].set_index("band").loc[band, "accuracy_change_specific"])
                    for name in ("baseline", "fsta")]
        row = stats.loc[("fsta", band, "accuracy_change_specific")]
        assert row["mean"] == pytest.approx(expected[1], abs=1e-12)
        assert row["change_mean"] == pytest.approx(expected[1] - expected[0], abs=1e-12)
        assert row["pairing"] == "one model against one"
    assert set(files) == {"report.html", "statistics.csv", "models.csv", "comparison.json", "plotly.min.js"}
    pd.testing.assert_frame_equal(pd.read_csv(files["statistics.csv"]), comparison.statistics(), check_exact=False,
                                  rtol=1e-12, check_dtype=False)
    assert json.loads(files["comparison.json"].read_text())["reference"] == "baseline"
    assert "fsta minus baseline" in files["report.html"].read_text()


def test_groups_paired_in_order_of_swapped_models_change_by_nothing(tmp_path):
    copies = {name: [load(bundled_checkpoint(name), "cpu")[0] for _ in range(2)] for name in ("baseline", "fsta")}
    groups = {"a": [copies["baseline"][0], copies["fsta"][0]], "b": [copies["fsta"][1], copies["baseline"][1]]}
    comparison, _ = compare_frequency(groups=groups, out=tmp_path / "r", T=2, **OPTIONS)
    stats = comparison.statistics()
    changed = stats[stats["group"] == "b"]
    assert np.allclose(changed["change_mean"], 0.0, atol=1e-12)  # pairs change by +d and -d
    tested = changed["p_value"].notna()
    assert tested.any() and np.allclose(changed.loc[tested, "p_value"], 1.0)  # pairs change by +d and -d: p = 1
    models = comparison.models().set_index(["model", "layer", "band"])
    for _, row in changed[~tested].iterrows():  # no test only where every pair changes by nothing
        values = models.xs((row["layer"], row["band"]), level=("layer", "band"))[row["measure"]]
        assert values.nunique() == 1
    assert comparison.pairing()["b"].how.startswith("by the order given")
    means = stats.pivot_table(index=["layer", "band", "measure"], columns="group", values="mean")
    np.testing.assert_allclose(means["a"], means["b"], atol=1e-12)


def test_a_folder_of_the_users_is_refused_before_any_pass(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(spikescope.errors.SpikescopeError, match="notes.txt|not a"):
        compare_frequency([bundled_checkpoint("baseline"), bundled_checkpoint("fsta")], out=tmp_path, **OPTIONS)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_no_controls_is_refused_before_any_model_loads(tmp_path):
    with pytest.raises(spikescope.errors.SpikescopeError, match="--draws must be at least 1"):
        compare_frequency([tmp_path / "missing-a.pt", tmp_path / "missing-b.pt"], out=tmp_path / "r",
                          **{**OPTIONS, "draws": 0})
