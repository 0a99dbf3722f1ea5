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
from test_cli_analyze import error_line

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


def test_every_bounded_quantity_has_its_range_for_the_confidence_intervals():
    from spikescope.compare import BOUNDS, LAYER_METRICS, TOTAL_METRICS

    unbounded = {"membrane_mean"}  # potentials over the threshold: any real number
    assert set(TOTAL_METRICS) | set(LAYER_METRICS) == set(BOUNDS) | unbounded
    assert all(low == 0 and high == np.inf for metric, (low, high) in BOUNDS.items() if "_per_image" in metric)


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
    parsed = parse_groups(["runs/base/checkpoint.pt", "runs/fsta/checkpoint.pt"],
                          groups={"arm": ["r/arm/seed0/checkpoint.pt", "r/arm/seed1/checkpoint.pt"]})
    assert list(parsed) == ["base", "fsta", "arm"] and list(parsed["arm"]) == ["arm/seed0", "arm/seed1"]


def test_the_compare_command_prints_each_group_and_refuses_bad_input(tiny_runs, tmp_path):
    command = [sys.executable, "-m", "spikescope", "compare", "--limit", "30", "--out", str(tmp_path / "c")]
    groups = [f"--group={arm}={','.join(map(str, paths))}" for arm, paths in tiny_runs.items()]
    result = subprocess.run(command + groups, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    table = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[2:4]}
    assert table == {"baseline": "2", "fsta": "2"} and "report: " in result.stdout
    bad = subprocess.run(command[:-2] + [str(tiny_runs["baseline"][0]), str(tmp_path / "missing.pt"), "--out",
                                         str(tmp_path / "d")], capture_output=True, text=True)
    assert bad.returncode == 2 and "checkpoint not found" in error_line(bad.stderr)
    assert not (tmp_path / "d").exists()


def _forward_calls(model_class_name: str):
    """A global forward hook counting the calls of whole models of one class (what a pass over the images costs)."""
    from torch.nn.modules.module import register_module_forward_hook

    calls = []
    handle = register_module_forward_hook(
        lambda module, args, output: calls.append(1) if type(module).__name__ == model_class_name else None)
    return calls, handle


def test_compare_runs_every_model_once_and_measures_what_each_alone_would(tmp_path):
    pair = [spikescope.bundled_checkpoint("baseline"), spikescope.bundled_checkpoint("fsta")]
    model, _ = spikescope.load(pair[0])
    calls, handle = _forward_calls(type(model).__name__)
    try:
        comparison, _ = compare(pair, labels=["a", "b"], limit=80, batch_size=40, out=tmp_path / "c")
    finally:
        handle.remove()
    assert len(calls) == 2 * 2  # two batches for each of two models: once each
    for label, path in zip("ab", pair):
        alone, _ = spikescope.pipeline.analyze_file(path, limit=80, batch_size=40, capture=0)
        together = comparison.results[label]
        for table in ("layers", "timesteps", "channels", "energy"):
            pd.testing.assert_frame_equal(getattr(together, table), getattr(alone, table))
        for layer, spectrum in alone.spectra.items():
            np.testing.assert_array_equal(together.spectra[layer], spectrum)
        assert together.info["accuracy"] == alone.info["accuracy"]
    cka = comparison.cka["b"]["matrix"]
    assert cka.shape == (5, 5) and ((cka > 0) & (cka <= 1)).all()


def test_the_same_model_twice_or_a_copy_of_it_is_refused_before_any_work(tiny_runs, tmp_path):
    a, b = tiny_runs["baseline"]
    copy = tmp_path / "copy.pt"
    copy.write_bytes(a.read_bytes())
    for models, groups in (([a, a], None), ([a, copy], None), ([], {"x": [a, a]}), ([], {"x": [a, b], "y": [b]})):
        with pytest.raises(SpikescopeError, match="same model file"):
            compare(models, groups=groups, limit=10, out=tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_labels_are_checked_and_messages_count_right():
    with pytest.raises(SpikescopeError, match="given twice"):
        parse_groups(["a.pt", "b.pt"], labels=["x", "x"])
    with pytest.raises(SpikescopeError, match="must not be empty"):
        parse_groups(["a.pt", "b.pt"], labels=["x", " "])
    with pytest.raises(SpikescopeError, match="given once for 2 such models"):
        parse_groups(["a.pt", "b.pt"], labels=["x"])
    with pytest.raises(SpikescopeError, match="given once for 0 such models .members of --group"):
        parse_groups([], labels=["x"], groups={"g": ["a.pt", "b.pt"]})
    renamed = parse_groups(["a/x.pt", "b/x.pt", "c/x-2.pt"])  # a renamed model never takes a later one's name
    assert [str(path) for members in renamed.values() for path in members.values()] == ["a/x.pt", "b/x.pt",
                                                                                         "c/x-2.pt"]


def test_groups_are_paired_by_the_seed_each_checkpoint_records(tiny_runs, tmp_path):
    base, fsta = tiny_runs["baseline"], tiny_runs["fsta"]
    comparison, files = compare(groups={"baseline": base, "fsta": fsta[::-1]}, limit=30, out=tmp_path / "c")
    assert comparison.pairing()["fsta"].pairs == [("baseline/seed0", "fsta/seed0"), ("baseline/seed1", "fsta/seed1")]
    totals = comparison.totals().set_index("model")["firing_rate"]
    change = json.loads(files["comparison.json"].read_text())["changes"]["fsta"]
    assert change["pairing"] == "by recorded seed"
    expected = stats.ttest_rel([totals["fsta/seed0"], totals["fsta/seed1"]],
                               [totals["baseline/seed0"], totals["baseline/seed1"]]).pvalue
    assert change["totals"]["firing_rate"]["p_value"] == pytest.approx(expected, rel=1e-9)
    lone = compare(groups={"baseline": base, "fsta": fsta[1:]}, limit=30, out=tmp_path / "d")[0]
    assert lone.pairing()["fsta"].pairs == [("baseline/seed1", "fsta/seed1")]
    assert any("seeds 0 have no partner" in message for message in lone.warnings)


def test_every_model_and_its_images_are_checked_before_the_first_pass(tiny_runs, tmp_path):
    from spikescope.checkpoint import read_checkpoint, save_checkpoint

    a, b = tiny_runs["baseline"][0], tiny_runs["fsta"][0]
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    folder = tmp_path / "run"
    folder.mkdir()
    cifar = read_checkpoint(b)  # a model that takes CIFAR-shaped images, after a Fashion-MNIST one
    cifar["dataset"] = {**cifar["dataset"], "name": "cifar10", "input_shape": [3, 32, 32]}
    save_checkpoint(cifar, tmp_path / "cifar.pt")
    model, _ = spikescope.load(a)
    calls, handle = _forward_calls(type(model).__name__)
    try:
        for models, match in (([a, b, notes], "notes.txt"), ([a, folder], "is a folder"),
                              ([a, tmp_path / "cifar.pt"], r"takes inputs of shape \[3, 32, 32\]")):
            with pytest.raises(SpikescopeError, match=match):
                compare(models, limit=10, out=tmp_path / "never")
    finally:
        handle.remove()
    assert calls == [] and not (tmp_path / "never").exists()


def test_compare_takes_the_model_flags_of_analyze_for_plain_state_dicts(tmp_path):
    import torch

    model, meta = spikescope.load(spikescope.bundled_checkpoint("baseline"))
    files = []
    for scale in (1.0, 0.9):
        path = tmp_path / f"w{scale}.pt"
        torch.save({name: value * scale if value.is_floating_point() else value
                    for name, value in model.state_dict().items()}, path)
        files.append(path)
    flags = ["--arch", meta["arch"], *[f"--arch-kw={k}={json.dumps(v)}" for k, v in meta["arch_kwargs"].items()],
             "--T", "2", "--data", "fashion-mnist-sample", "--limit", "20"]
    command = [sys.executable, "-m", "spikescope", "compare", *map(str, files)]
    refused = subprocess.run(command + ["--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert refused.returncode == 2 and "--arch" in error_line(refused.stderr)
    done = subprocess.run(command + flags + ["--out", str(tmp_path / "y")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "y" / "comparison.json").read_text())["samples"] == 20


def test_each_warning_is_printed_once_per_model_and_names_it(tmp_path):
    pair = [str(spikescope.bundled_checkpoint(name)) for name in ("baseline", "fsta")]
    result = subprocess.run([sys.executable, "-m", "spikescope", "compare", *pair, "--label", "a", "--label", "b",
                             "--data", "gratings", "--limit", "20", "--out", str(tmp_path / "c")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    caveats = [line for line in result.stderr.splitlines() if "meaningless" in line]
    assert len(caveats) == 2 and caveats[0].startswith("spikescope: warning: a: ") and " b: " in caveats[1]


def test_a_model_that_cannot_run_on_the_images_is_one_line_that_names_it(tmp_path):
    import torch

    from spikescope.models import build

    files = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        files.append(tmp_path / f"rgb{seed}.pt")
        torch.save(build("compact_cnn", in_channels=3, T=2).state_dict(), files[-1])
    with pytest.raises(SpikescopeError, match=r"rgb0 cannot run on images of shape \[1, 28, 28\] \(RuntimeError"):
        compare(files, arch="compact_cnn", arch_kwargs={"in_channels": 3}, T=2, data="fashion-mnist-sample",
                limit=10, out=tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_totals_carry_the_energy_terms_the_ann_twin_and_the_ratio_with_their_changes():
    from spikescope.compare import DEFINITIONS, TOTAL_METRICS, Comparison, model_totals

    results = {arm: spikescope.pipeline.analyze_file(spikescope.bundled_checkpoint(arm), limit=16,
                                                     energy="lemaire2022", capture=0)[0]
               for arm in ("baseline", "fsta")}
    terms = [f"energy_{term}_pj_per_image" for term in ("ops", "addressing", "inout", "params", "potentials")]
    assert {*terms, "ann_energy_pj_per_image", "snn_ann_ratio"} <= set(TOTAL_METRICS)
    assert {"energy_{term}_pj_per_image", "ann_energy_pj_per_image", "snn_ann_ratio"} <= set(DEFINITIONS)
    for result in results.values():
        totals, expected = model_totals(result), result.energy_totals()
        assert list(totals) == list(TOTAL_METRICS)
        assert sum(totals[t] for t in terms) == pytest.approx(totals["energy_pj_per_image"], rel=1e-12)
        assert all(totals[t] > 0 for t in terms)  # lemaire2022 prices every term on this network
        for metric in (*terms, "ann_energy_pj_per_image", "snn_ann_ratio"):
            assert totals[metric] == expected[metric]
        assert totals["snn_ann_ratio"] == pytest.approx(totals["energy_pj_per_image"]
                                                        / totals["ann_energy_pj_per_image"], rel=1e-12)
    stats_ = Comparison({"baseline": ["baseline"], "fsta": ["fsta"]}, results).statistics()
    change = stats_["changes"]["fsta"]["totals"]
    for metric in (*terms, "ann_energy_pj_per_image", "snn_ann_ratio"):
        values = [model_totals(results[arm])[metric] for arm in ("baseline", "fsta")]
        assert change[metric]["mean"] == pytest.approx(values[1] - values[0], rel=1e-12)
        assert stats_["groups"]["fsta"]["totals"][metric]["mean"] == values[1]
