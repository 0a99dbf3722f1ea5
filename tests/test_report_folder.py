"""Report folders: checked before any work, written whole or not at all, never over a user's own files,
and default names that two checkpoints never share."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spikescope.checkpoint import bundled_checkpoint
from spikescope.errors import SpikescopeError
from spikescope.report.folder import MARKER, check_output_folder, default_report_folder, report_folder

OUTPUTS = {"report.html", "plotly.min.js", "layers.csv", "timesteps.csv", "channels.csv", "energy.csv",
           "spectra.npz", "similarity.npz", "spikes.npz", "summary.json", MARKER}


def spikescope(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "spikescope", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


def one_line_error(result, message):
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("spikescope: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr, result.stderr


def test_an_existing_file_or_an_uncreatable_path_is_refused_before_the_model_is_loaded(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    missing_model = tmp_path / "no-such-model.pt"  # loading it would fail: the folder is checked first
    one_line_error(spikescope("analyze", missing_model, "--out", tmp_path / "notes.txt"), "is an existing file")
    one_line_error(spikescope("analyze", missing_model, "--out", tmp_path / "notes.txt" / "report"),
                   "cannot be created: ")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_folder_that_is_not_a_spikescope_report_is_never_touched(tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work")
    result = spikescope("analyze", "--limit", 10, "--out", ".", cwd=tmp_path)
    one_line_error(result, "is a non-empty folder that is not a spikescope report")
    assert sorted(os.listdir(tmp_path)) == ["thesis.tex"]
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


def test_rerunning_into_a_report_replaces_it_as_a_whole(tmp_path):
    out = tmp_path / "report"
    assert spikescope("analyze", "--limit", 20, "--png", "--out", out).returncode == 0
    assert (out / "figures" / "spectra.png").exists()
    first = json.loads((out / MARKER).read_text())
    assert first["format"] == "spikescope-report" and first["kind"] == "analyze"
    assert spikescope("analyze", "--limit", 30, "--out", out).returncode == 0
    assert {p.name for p in out.iterdir()} == OUTPUTS  # no stale figures/ from the first run
    assert json.loads((out / "summary.json").read_text())["samples"] == 30
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no staging or old folder left beside it


@pytest.mark.parametrize("written", [0, 1, 3])
def test_an_interrupt_while_writing_leaves_no_folder_or_the_previous_report(tmp_path, written):
    out = tmp_path / "report"
    with pytest.raises(KeyboardInterrupt):
        with report_folder(out, {"kind": "test"}) as staging:
            for index in range(written):
                (staging / f"table{index}.csv").write_text("1,2\n")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with report_folder(out, {"kind": "test"}) as staging:
        (staging / "complete.csv").write_text("a\n")
    with pytest.raises(KeyboardInterrupt):
        with report_folder(out, {"kind": "test"}) as staging:
            for index in range(written):
                (staging / f"table{index}.csv").write_text("1,2\n")
            raise KeyboardInterrupt
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "complete.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def hear_ctrl_c() -> None:
    """In a child process: take Ctrl-C as a terminal would deliver it, even when the tests run in the background
    (where a shell starts them with SIGINT ignored, and Python would then never raise KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_while_writing(out: Path, files_written: int, limit: int) -> int:
    """Run `analyze --png` and send Ctrl-C (SIGINT) once its staging folder holds `files_written` entries."""
    process = subprocess.Popen([sys.executable, "-m", "spikescope", "analyze", "--limit", str(limit), "--png",
                                "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=hear_ctrl_c)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        staging = [p for p in out.parent.glob(f".{out.name}.*.partial")]
        if staging and sum(1 for _ in staging[0].rglob("*")) >= files_written:
            process.send_signal(signal.SIGINT)
            break
        time.sleep(0.002)
    return process.wait(timeout=120)


@pytest.mark.parametrize("files_written", [1, 6, 12])
def test_ctrl_c_while_the_report_is_written_leaves_the_previous_report_or_none(tmp_path, files_written):
    out = tmp_path / "report"
    assert interrupt_while_writing(out, files_written, limit=100) == 130  # interrupted while writing
    assert list(tmp_path.iterdir()) == []
    assert spikescope("analyze", "--limit", 20, "--out", out).returncode == 0
    assert interrupt_while_writing(out, files_written, limit=100) == 130
    assert json.loads((out / "summary.json").read_text())["samples"] == 20  # the previous report, whole
    assert {p.name for p in out.iterdir()} == OUTPUTS
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no staging folder left behind


@pytest.mark.parametrize("signal_number, exit_code", [(signal.SIGTERM, 128 + signal.SIGTERM),
                                                      (signal.SIGINT, -signal.SIGINT)])
def test_a_kill_signal_while_staging_cleans_up_and_a_killed_runs_leftovers_are_removed_next_time(
        tmp_path, signal_number, exit_code):
    script = ("import os, signal, sys\n"
              "from spikescope.report.folder import report_folder\n"
              "with report_folder(sys.argv[1], {'kind': 'test'}) as staging:\n"
              "    (staging / 'half.csv').write_text('1')\n"
              "    os.kill(os.getpid(), int(sys.argv[2]))\n")
    code = subprocess.run([sys.executable, "-c", script, str(tmp_path / "r"), str(int(signal_number))],
                          capture_output=True, preexec_fn=hear_ctrl_c).returncode
    assert code == exit_code and list(tmp_path.iterdir()) == []  # Python ends an uncaught Ctrl-C by SIGINT
    (tmp_path / ".r.abc123.partial").mkdir()  # what a SIGKILL while staging leaves
    (tmp_path / ".r.def456.old").mkdir()  # ... or while swapping
    with report_folder(tmp_path / "r", {"kind": "test"}) as staging:
        (staging / "whole.csv").write_text("1")
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def test_the_library_check_matches_the_cli(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SpikescopeError, match="existing file"):
        check_output_folder(tmp_path / "file", "analyze")
    assert check_output_folder(tmp_path / "new" / "deeper", "analyze") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_default_names_follow_the_run_folder_and_two_checkpoints_never_share_one(tmp_path):
    runs = tmp_path / "runs"
    for arm in ("baseline", "fsta"):
        (runs / arm).mkdir(parents=True)
        shutil.copy(bundled_checkpoint(arm), runs / arm / "checkpoint.pt")
    for arm in ("baseline", "fsta"):
        result = spikescope("analyze", Path("runs") / arm / "checkpoint.pt", "--data", "fashion-mnist-sample",
                            "--limit", 20, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"report folder: {Path('reports') / arm}" in result.stderr
    reports = tmp_path / "reports"
    assert sorted(p.name for p in reports.iterdir()) == ["baseline", "fsta"]
    assert json.loads((reports / "fsta" / "summary.json").read_text())["model"]["checkpoint"].endswith(
        str(Path("fsta") / "checkpoint.pt"))

    (tmp_path / "other" / "baseline").mkdir(parents=True)  # another run folder with the same name
    shutil.copy(bundled_checkpoint("baseline"), tmp_path / "other" / "baseline" / "checkpoint.pt")
    def default(model):
        return default_report_folder("analyze", [model], root=reports)

    assert default(runs / "baseline" / "checkpoint.pt") == reports / "baseline"  # its own
    assert default(tmp_path / "other" / "baseline" / "checkpoint.pt") == reports / "baseline-2"
    assert default(tmp_path / "model_best.pt") == reports / tmp_path.name
    assert default(tmp_path / "resnet20_fsta.pt") == reports / "resnet20_fsta"
