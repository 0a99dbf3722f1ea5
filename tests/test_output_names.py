"""Output folders keep their promises: one naming rule for every command that never gives two different reports
the same folder, a rerun never deletes what a user added, a report of one kind never replaces another kind,
and paths the file system cannot take are refused in one line before any work."""
import json
import shutil
from pathlib import Path

import pytest

from spikescope.checkpoint import bundled_checkpoint
from spikescope.errors import SpikescopeError
from spikescope.report.folder import (MARKER, check_output_folder, default_report_folder, report_folder,
                                      report_marker)
from test_report_folder import one_line_error, spikescope


def runs(root: Path, *names: str) -> list[Path]:
    """Model files `root/<name>/checkpoint.pt` (empty files: naming never opens them)."""
    paths = []
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "checkpoint.pt").touch()
        paths.append(root / name / "checkpoint.pt")
    return paths


def write_report(kind, sources, variant="", root=Path("reports"), names=None, files=("comparison.html",)) -> Path:
    """Write a small report of `kind` where the default rule puts it; returns the folder."""
    out = check_output_folder(default_report_folder(kind, sources, variant, names, root), kind)
    with report_folder(out, report_marker(kind, sources, variant)) as staging:
        for name in files:
            (staging / name).write_text(name)
    return out


def test_compare_reports_of_other_models_or_other_groups_never_share_a_folder(tmp_path):
    reports = tmp_path / "reports"
    base, fsta = runs(tmp_path / "a", "base", "fsta")
    other_base, other_fsta = runs(tmp_path / "b", "base", "fsta")
    middle, = runs(tmp_path / "a", "x")
    first = write_report("compare", [base, fsta], root=reports)
    assert first == reports / "compare-base-fsta"
    assert write_report("compare", [other_base, other_fsta], root=reports) == reports / "compare-base-fsta-2"
    assert write_report("compare", [base, middle, fsta], root=reports) == reports / "compare-base-fsta-3"
    assert write_report("compare", [base, fsta], "groups base=1 fsta=1", root=reports) == (
        reports / "compare-base-fsta-4")
    assert write_report("compare", [fsta, base], root=reports) == reports / "compare-fsta-base"
    # the same report again goes back to its own folder, whichever was written last
    assert default_report_folder("compare", [other_base, other_fsta], root=reports) == reports / "compare-base-fsta-2"
    assert default_report_folder("compare", [base, fsta], root=reports) == first
    assert default_report_folder("compare", [base, fsta], names=["before", "after"], root=reports) == (
        reports / "compare-before-after")


def test_attribute_names_its_method_and_analyze_and_attribute_of_one_model_never_share(tmp_path):
    reports, model = tmp_path / "reports", bundled_checkpoint("baseline")
    assert default_report_folder("attribute", [model], "ig", root=reports) == reports / "compact_cnn_baseline-ig"
    write_report("analyze", [model], root=reports, files=("layers.csv",))
    write_report("attribute", [model], "saliency", root=reports, files=("attribution.json",))
    assert default_report_folder("attribute", [model], "saliency", root=reports) == (
        reports / "compact_cnn_baseline-saliency")
    assert default_report_folder("attribute", [model], "ig", root=reports) == reports / "compact_cnn_baseline-ig"
    other, = runs(tmp_path, "compact_cnn_baseline")  # another model with the same label
    assert default_report_folder("analyze", [other], root=reports) == reports / "compact_cnn_baseline-2"


def test_a_rerun_refuses_a_folder_holding_files_the_report_did_not_write(tmp_path):
    out = tmp_path / "report"
    assert spikescope("analyze", "--limit", 10, "--png", "--out", out).returncode == 0
    marker = json.loads((out / MARKER).read_text())
    assert "figures/" in marker["files"] and "my_notes.txt" not in marker["files"]
    (out / "my_notes.txt").write_text("mine")
    one_line_error(spikescope("analyze", "no-such-model.pt", "--out", out),
                   "holds files that the report did not write (my_notes.txt)")
    (out / "my_notes.txt").unlink()
    (out / "figs").mkdir()
    (out / "figs" / "plot.png").write_text("mine")
    one_line_error(spikescope("analyze", "no-such-model.pt", "--out", out), "(figs/)")
    assert (out / "figs" / "plot.png").read_text() == "mine"
    shutil.rmtree(out / "figs")
    assert spikescope("analyze", "--limit", 10, "--out", out).returncode == 0  # its own files only: replaced


def test_a_report_of_another_kind_is_never_replaced(tmp_path):
    out = tmp_path / "report"
    with report_folder(out, report_marker("analyze", [bundled_checkpoint("baseline")])) as staging:
        (staging / "layers.csv").write_text("x")
    with pytest.raises(SpikescopeError, match="holds a report of spikescope analyze, which spikescope compare would "
                                              "replace"):
        check_output_folder(out, "compare")
    one_line_error(spikescope("attribute", "--samples", 2, "--out", out),
                   "holds a report of spikescope analyze, which spikescope attribute would replace")
    assert (out / "layers.csv").read_text() == "x"
    assert check_output_folder(out, "analyze") == out


def test_a_report_of_the_previous_version_is_replaced_only_if_it_holds_that_kinds_files(tmp_path):
    out = tmp_path / "old"
    out.mkdir()  # a marker without a file list, as spikescope 0.1 wrote it
    (out / MARKER).write_text(json.dumps({"format": "spikescope-report", "kind": "analyze", "source": None}))
    for name in ("report.html", "layers.csv", "summary.json"):
        (out / name).write_text(name)
    (out / "figures").mkdir()
    assert check_output_folder(out, "analyze") == out
    (out / "comparison.html").write_text("not what analyze writes")
    with pytest.raises(SpikescopeError, match=r"did not write \(comparison.html\)"):
        check_output_folder(out, "analyze")


def test_a_300_character_label_gives_a_valid_bounded_name_and_two_long_labels_two_names(tmp_path):
    reports = tmp_path / "reports"
    a, b = runs(tmp_path, "a", "b")
    long_one, long_two = "x" * 299 + "1", "x" * 299 + "2"
    first = default_report_folder("compare", [a, b], names=[long_one, "b"], root=reports)
    second = default_report_folder("compare", [a, b], names=[long_two, "b"], root=reports)
    assert len(first.name) <= 100 and first.name.startswith("compare-xxxx") and first != second
    assert check_output_folder(first, "compare") == first
    assert default_report_folder("compare", [a, b], names=["../../etc", "b/c d"], root=reports) == (
        reports / "compare-.._.._etc-b_c_d")  # never outside `reports`
    assert default_report_folder("analyze", [tmp_path / "..hidden.pt"], root=reports) == reports / "hidden"


@pytest.mark.parametrize("name_length", [300, 240])  # 240 fits the file system, its staging sibling does not
def test_an_out_too_long_for_the_file_system_is_refused_in_one_line_before_any_work(tmp_path, name_length):
    out = tmp_path / ("r" * name_length)
    with pytest.raises(SpikescopeError, match=r"this file system takes \d+ at most"):
        check_output_folder(out, "analyze")
    one_line_error(spikescope("analyze", tmp_path / "no-such-model.pt", "--out", out), "choose a shorter name")
    assert list(tmp_path.iterdir()) == []


def test_a_training_run_folder_too_long_for_the_file_system_is_refused_before_any_work(tmp_path):
    from spikescope.train import TrainConfig, train

    with pytest.raises(SpikescopeError, match="has a name of 300 bytes"):
        train(TrainConfig(data="fashion-mnist-sample", out=str(tmp_path / ("r" * 300))), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_default_names_are_bounded_in_bytes_not_characters(tmp_path):
    wide = tmp_path / ("模" * 80 + ".pt")  # 240 bytes: a legal file name
    folder = default_report_folder("analyze", [wide], root=tmp_path / "reports")
    assert len(folder.name.encode()) <= 100 and folder.name.startswith("模")
    assert check_output_folder(folder, "analyze") == folder


def test_a_default_folder_holding_the_users_files_is_left_alone_for_a_new_one(tmp_path):
    reports = tmp_path / "reports"
    model = runs(tmp_path, "base")[0]
    first = default_report_folder("analyze", [model], root=reports)
    with report_folder(first, report_marker("analyze", [model])) as staging:
        (staging / "report.html").write_text("report")
    assert default_report_folder("analyze", [model], root=reports) == first  # its own report: replaced
    (first / "my_notes.txt").write_text("mine")
    assert default_report_folder("analyze", [model], root=reports) == reports / "base-2"


def test_a_path_too_long_in_total_is_refused(tmp_path):
    out = tmp_path.joinpath(*["d" * 200] * 21)
    with pytest.raises(SpikescopeError, match="too long a path for this file system"):
        check_output_folder(out, "analyze")


def test_an_unwritable_parent_is_refused_before_any_work_even_for_root(tmp_path):
    out = Path("/proc") / "spikescope-report"  # permission bits say yes to root; the file system says no
    with pytest.raises(SpikescopeError, match="/proc does not take new folders"):
        check_output_folder(out, "analyze")
    one_line_error(spikescope("analyze", tmp_path / "no-such-model.pt", "--out", out / "deeper"),
                   "cannot be created: /proc does not take new folders")
    (tmp_path / "reports").write_text("a file where the default folder's parent goes")
    one_line_error(spikescope("analyze", "--limit", 5, cwd=tmp_path), "cannot be created")
    one_line_error(spikescope("attribute", "--samples", 2, cwd=tmp_path), "cannot be created")
    assert list(tmp_path.iterdir()) == [tmp_path / "reports"]
