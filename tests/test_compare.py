"""`spikescope compare`: every model analysed as `analyze` would, on the same images; groups of seeds with
their means, confidence intervals and paired tests."""
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import spikescope
from spikescope.compare import compare, parse_groups
from spikescope.errors import SpikescopeError
from spikescope.groupstats import paired_difference, spearman, summarize
from spikescope.pipeline import analyze_checkpoint
from spikescope.train import TrainConfig

TINY = TrainConfig(data="fashion-mnist-sample", arch_kwargs={"width": 4}, batch_size=32, limit=64, test_limit=32,
                   epochs=1)


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Four tiny checkpoints: baseline and FSTA, seeds 0 and 1."""
    folder = tmp_path_factory.mktemp("runs")
    return spikescope.train_arms(TINY, ["baseline", "fsta"], seeds=[0, 1], out=folder, progress=False)


def test_compare_of_two_checkpoints_equals_analyze_run_on_each(tiny_runs, tmp_path):
    a, b = tiny_runs["baseline"][0], tiny_runs["fsta"][0]
    comparison, files = compare([a, b], labels=["base", "fsta"], limit=40, out=tmp_path / "cmp")
    table = pd.read_csv(files["comparison.csv"])
    for label, path in (("base", a), ("fsta", b)):
        _, alone = analyze_checkpoint(path, limit=40, out=tmp_path / label)
        expected = pd.read_csv(alone["layers.csv"])
        rows = table[table["model"] == label].drop(columns=["model", "group"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(rows, expected, check_dtype=False)
    summary = json.loads(files["comparison.json"].read_text())
    assert summary["samples"] == 40 and summary["reference"] == "base"
    change = summary["changes"]["fsta"]["totals"]["firing_rate"]
    assert change["mean"] == pytest.approx(summary["models"]["fsta"]["firing_rate"]
                                           - summary["models"]["base"]["firing_rate"], rel=1e-12)
    assert summary["models"]["fsta"]["fsta_macs_per_image"] > 0 == summary["models"]["base"]["fsta_macs_per_image"]
    html = files["comparison.html"].read_text()
    for figure in ("firing", "energy", "orientation", "similarity", "spectra"):
        assert f'id="figure-{figure}"' in html


def test_groups_of_seeds_give_means_intervals_and_paired_tests_that_say_their_n(tiny_runs, tmp_path):
    comparison, files = compare(groups=tiny_runs, limit=40, out=tmp_path / "cmp")
    stats_ = json.loads(files["comparison.json"].read_text())
    assert stats_["groups"]["baseline"]["n"] == 2 and stats_["groups"]["fsta"]["models"] == [
        "fsta/seed0", "fsta/seed1"]
    totals = comparison.totals().set_index("model")
    rates = [totals.loc[f"baseline/seed{s}", "firing_rate"] for s in (0, 1)]
    summary = stats_["groups"]["baseline"]["totals"]["firing_rate"]
    assert summary["mean"] == pytest.approx(np.mean(rates)) and summary["n"] == 2
    change = stats_["changes"]["fsta"]["totals"]["firing_rate"]
    fsta_rates = [totals.loc[f"fsta/seed{s}", "firing_rate"] for s in (0, 1)]
    assert change["p_value"] == pytest.approx(stats.ttest_rel(fsta_rates, rates).pvalue)
    assert change["n"] == 2 and change["paired"]


def test_summaries_and_paired_differences_on_hand_made_values():
    summary = summarize([1.0, 2.0, 3.0, float("nan")])
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # std of 1, 2, 3 is 1
    assert summary["n"] == 3 and summary["mean"] == 2 and summary["std"] == pytest.approx(1)
    assert (summary["ci_low"], summary["ci_high"]) == pytest.approx((2 - half, 2 + half))
    one = summarize([5.0])
    assert one["n"] == 1 and one["mean"] == 5 and math.isnan(one["std"]) and math.isnan(one["ci_low"])
    difference = paired_difference([11.0, 12.0, 14.0], [10.0, 10.0, 10.0])  # differences 1, 2, 4
    assert difference["mean"] == pytest.approx(7 / 3) and difference["percent"] == pytest.approx(70 / 3)
    assert difference["p_value"] == pytest.approx(stats.ttest_rel([11, 12, 14], [10, 10, 10]).pvalue)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert math.isnan(spearman([1, 2], [3, 4]))


def test_names_and_groups_are_checked():
    with pytest.raises(SpikescopeError, match="needs at least two models"):
        parse_groups(["a.pt"])
    with pytest.raises(SpikescopeError, match="--label was given 1 times for 2 models"):
        parse_groups(["a.pt", "b.pt"], labels=["x"])
    parsed = parse_groups(["runs/base/checkpoint.pt", "runs/fsta/checkpoint.pt"],
                          groups={"arm": ["r/arm/seed0/checkpoint.pt", "r/arm/seed1/checkpoint.pt"]})
    assert list(parsed) == ["base", "fsta", "arm"] and list(parsed["arm"]) == ["arm/seed0", "arm/seed1"]


def test_the_compare_command_prints_each_group_and_refuses_bad_input(tiny_runs, tmp_path):
    command = [sys.executable, "-m", "spikescope", "compare", "--limit", "30", "--out", str(tmp_path / "c")]
    groups = [f"--group={arm}={','.join(map(str, paths))}" for arm, paths in tiny_runs.items()]
    result = subprocess.run(command + groups, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "baseline             n=2" in result.stdout and "report: " in result.stdout
    bad = subprocess.run(command[:-2] + [str(tiny_runs["baseline"][0]), str(tmp_path / "missing.pt"), "--out",
                                         str(tmp_path / "d")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "checkpoint not found" in bad.stderr
    assert not (tmp_path / "d").exists()
