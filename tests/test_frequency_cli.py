"""`spikescope frequency` and `spikescope.frequency_checkpoint` end to end: the report folder, its numbers, and how
bad input is refused."""
import io
import json

import numpy as np
import pandas as pd
import pytest

import spikescope
from spikescope.checkpoint import bundled_checkpoint
from spikescope.errors import SpikescopeError
from spikescope.report.folder import default_report_folder
from test_cli_analyze import error_line, spikescope as run

LAYERS = [f"block{i}.lif" for i in range(1, 6)]
QUICK = ["--limit", "40", "--bands", "axis", "--draws", "1"]
FILES = {".spikescope-report", "report.html", "plotly.min.js", "effects.csv", "controls.csv", "frequency.json",
         "ablation.npz"}


def test_the_command_writes_what_the_python_call_measures(in_tmp):
    result = run("frequency", *QUICK)
    assert result.returncode == 0, result.stderr
    out = in_tmp / "reports" / "compact_cnn_baseline-frequency"
    assert "spikescope: report folder: reports/compact_cnn_baseline-frequency" in result.stderr
    assert {p.name for p in out.iterdir()} == FILES
    ablation, files = spikescope.frequency_checkpoint(out=in_tmp / "python", limit=40, bands="axis", draws=1)
    assert set(files) == FILES - {".spikescope-report"} and ablation.layers == LAYERS and ablation.info["images"] == 40
    for name, table in (("effects.csv", ablation.effects()), ("controls.csv", ablation.against_controls())):
        written = pd.read_csv(out / name)
        pd.testing.assert_frame_equal(written, pd.read_csv(io.StringIO(table.to_csv(index=False))))
        pd.testing.assert_frame_equal(written, pd.read_csv(files[name]))
    arrays = np.load(out / "ablation.npz")
    for layer in LAYERS:
        assert list(arrays[f"{layer}:conditions"]) == ablation.conditions[layer]
        for measure in ("correct", "logit_change", "kl"):
            assert np.array_equal(arrays[f"{layer}:{measure}"], getattr(ablation, measure)[layer])
        assert np.array_equal(arrays[f"{layer}:gain:axis_vertical"], ablation.gains[layer]["axis_vertical"])
        assert np.array_equal(arrays[f"{layer}:power"], ablation.power[layer])
    assert np.array_equal(arrays["base_correct"], ablation.base_correct)
    summary = json.loads((out / "frequency.json").read_text())
    assert summary["command"] == "spikescope frequency " + " ".join(QUICK)
    assert summary["info"]["target"] == "label" and summary["info"]["draws"] == 1 and not summary["info"]["binarize"]
    assert len(summary["controls"]) == 2 * len(LAYERS) and "ablation.npz" in summary["files"]
    assert "axis_vertical" in summary["definitions"]["bands"]
    effects = pd.read_csv(out / "effects.csv").set_index(["layer", "condition"])
    identity = effects.xs("identity", level="condition")
    assert (identity[["accuracy_change_mean", "logit_change_mean", "kl_mean"]] == 0).all().all()
    assert (effects.xs("all", level="condition")["removed_power_share"] == 1).all()
    controls = effects[effects["kind"] == "control"]
    bands = effects.loc[[(layer, band) for layer, band in zip(controls.index.get_level_values(0), controls["band"])]]
    assert np.allclose(controls["removed_power_share"].to_numpy(), bands["removed_power_share"].to_numpy())
    for layer in LAYERS:
        assert sum(line.split()[:1] == [layer] for line in result.stdout.splitlines()) == 2  # both axis bands
    assert "report: reports/compact_cnn_baseline-frequency/report.html" in result.stdout
    page = (out / "report.html").read_text()
    assert 'id="figure-accuracy"' in page and 'id="figure-kl"' in page and "are not binary" in page
    assert "This run passed them on as they are." in page


def test_binarize_is_recorded_and_said_in_the_report(tmp_path):
    ablation, files = spikescope.frequency_checkpoint(out=tmp_path / "r", layers="block5.lif", bands="dc", draws=1,
                                                      limit=20, binarize=True)
    assert ablation.layers == ["block5.lif"] and ablation.info["binarize"]
    assert json.loads(files["frequency.json"].read_text())["info"]["binarize"] is True
    assert "This run re-binarised them." in files["report.html"].read_text()


def test_help_names_the_bands_and_the_outputs():
    result = run("frequency", "--help")
    assert result.returncode == 0 and "axis_vertical: variation along the height" in result.stdout
    assert "controls.csv" in result.stdout and "--binarize" in result.stdout and "--data-root" in result.stdout


def test_the_default_folder_is_the_models_name_and_frequency(tmp_path):
    source = bundled_checkpoint("baseline")
    assert default_report_folder("frequency", [source], root=tmp_path) == tmp_path / "compact_cnn_baseline-frequency"
    assert default_report_folder("analyze", [source], root=tmp_path) == tmp_path / "compact_cnn_baseline"


@pytest.mark.parametrize("args, message", [
    (["--bands", "axes"], "unknown band set 'axes': choose from axis, wedge, radial, dc"),
    (["--bands", "axis,axis"], "band set named twice"),
    (["--coefficients", "-1"], "argument --coefficients: must be at least 0, got -1"),
    (["--draws", "0"], "argument --draws: must be at least 1, got 0"),
    (["--layers", "block9.lif"], "no module named 'block9.lif'"),
    (["--layers", "classifier"], "no selected spiking layer has 2D maps to ablate"),
])
def test_bad_input_is_one_line_and_exit_code_2(in_tmp, args, message):
    result = run("frequency", "--limit", "10", "--out", "out", *args)
    assert result.returncode == 2 and message in error_line(result.stderr), result.stderr
    assert not (in_tmp / "out").exists()


def test_a_folder_of_the_users_is_refused_and_left_untouched(in_tmp):
    (in_tmp / "mine").mkdir()
    (in_tmp / "mine" / "notes.txt").write_text("keep me")
    result = run("frequency", *QUICK, "--out", "mine")
    assert result.returncode == 2 and "not a spikescope report" in error_line(result.stderr)
    assert [p.name for p in (in_tmp / "mine").iterdir()] == ["notes.txt"]
    assert (in_tmp / "mine" / "notes.txt").read_text() == "keep me"


def test_python_refuses_before_loading(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(SpikescopeError, match="not a spikescope report"):
        spikescope.frequency_checkpoint("missing.pt", out=tmp_path / "mine")  # the folder is checked first
    with pytest.raises(SpikescopeError, match="--coefficients must be at least 0"):
        spikescope.frequency_checkpoint(out=tmp_path / "new", coefficients=-2)
    assert not (tmp_path / "new").exists()


def test_two_models_are_compared_in_one_report(tmp_path):
    models = [bundled_checkpoint("baseline"), bundled_checkpoint("fsta")]
    result = run("frequency", *models, "--label", "base", "--label", "fsta", *QUICK, "--layers", "block5.lif",
                 "--out", tmp_path / "cli")
    assert result.returncode == 0, result.stderr
    comparison, files = spikescope.compare_frequency(models, labels=["base", "fsta"], out=tmp_path / "python",
                                                     limit=40, bands="axis", draws=1, layers="block5.lif")
    assert {p.name for p in (tmp_path / "cli").iterdir()} == {".spikescope-report", *files}
    written = pd.read_csv(tmp_path / "cli" / "statistics.csv")
    pd.testing.assert_frame_equal(written, pd.read_csv(files["statistics.csv"]))
    assert "against base" in result.stdout and "fsta block5.lif   axis_vertical" in result.stdout
    lone = run("frequency", models[0], "--label", "base", *QUICK)
    assert lone.returncode == 2 and "--label names models that are compared" in error_line(lone.stderr)


def test_two_processes_write_the_report_of_one(tmp_path):
    from test_distributed import spikescope_cli, torchrun
    args = ["frequency", *QUICK, "--layers", "block2.lif,block4.lif", "--batch-size", "10"]
    one = spikescope_cli(*args, "--out", tmp_path / "one")
    two = torchrun("-m", "spikescope", *args, "--out", tmp_path / "two")
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-2000:]
    assert two.stdout.count("report:") == 1  # rank 0 alone speaks and writes
    for name in ("effects.csv", "controls.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "two" / name), pd.read_csv(tmp_path / "one" / name),
                                      check_exact=False, atol=1e-5)
    assert json.loads((tmp_path / "two" / "frequency.json").read_text())["info"]["processes"] == 2


def test_fsta_adds_what_the_attention_draws_on(tmp_path):
    result = run("frequency", bundled_checkpoint("fsta"), "--fsta", "--limit", "10", "--bands", "dc", "--draws", "1",
                 "--layers", "block5.lif", "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    fsta = pd.read_csv(tmp_path / "r" / "fsta.csv")
    assert set(fsta["position"]) == {f"block{i}.lif.fsta" for i in range(1, 6)}
    assert (fsta[fsta["component"] == "identity"][["accuracy_change_mean", "gain_change_mean"]] == 0).all().all()
    summary = json.loads((tmp_path / "r" / "frequency.json").read_text())
    assert "fsta.csv" in summary["files"] and summary["fsta"]["info"]["images"] == 10
    assert "block1.lif.fsta draws most on (u, v) =" in result.stdout
    assert "<h2>FSTA&#x27;s frequencies</h2>" in (tmp_path / "r" / "report.html").read_text()
    refused = run("frequency", "--fsta", "--limit", "10", "--out", tmp_path / "no")
    assert refused.returncode == 2 and "has no FSTA module" in error_line(refused.stderr)
    assert not (tmp_path / "no").exists()
    hint = run("frequency", bundled_checkpoint("fsta"), "--limit", "10", "--bands", "dc", "--draws", "1",
               "--layers", "block5.lif", "--out", tmp_path / "hint")
    assert "--fsta (fsta=True) also measures" in hint.stderr
