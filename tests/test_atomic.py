"""Files and folders written atomically get the permissions a plain open()/mkdir() would give them, and a
failure leaves the previous output untouched with nothing half-written beside it."""
import json
import os
import stat
import subprocess
import sys

import pytest
import torch

from spikescope import atomic
from spikescope.atomic import atomic_path
from spikescope.checkpoint import read_checkpoint, save_checkpoint
from spikescope.report.folder import MARKER, report_folder

FILE_MODE = 0o666 & ~atomic.UMASK  # what open() creates under the umask spikescope read at import
FOLDER_MODE = 0o777 & ~atomic.UMASK


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(autouse=True)
def process_umask():
    """Run each test under the umask spikescope read at import (plain writes then follow it too); restore after."""
    previous = os.umask(atomic.UMASK)
    yield atomic.UMASK
    os.umask(previous)


def test_the_modes_expected_here_differ_from_what_mkstemp_and_mkdtemp_create():
    # mkstemp makes 0o600 files and mkdtemp 0o700 folders: under a umask that leaves group or others any
    # permission, a missing chmod shows in the tests below
    assert FILE_MODE != 0o600 and FOLDER_MODE != 0o700, f"umask {atomic.UMASK:o} makes these checks blind"


def test_a_file_written_with_atomic_path_gets_the_mode_open_would_give_it(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert mode(target) == FILE_MODE
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert mode(plain) == FILE_MODE  # the same as a file written without atomic_path


def test_replacing_a_file_gives_the_new_file_the_normal_mode_not_the_old_ones(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    os.chmod(target, 0o600)
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and mode(target) == FILE_MODE


def test_an_exception_inside_atomic_path_leaves_the_previous_file_untouched_and_no_temporary_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("previous")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("boom")
    assert target.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_an_exception_before_the_first_write_leaves_no_file_at_all(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target):
            raise KeyboardInterrupt
    assert not target.exists() and list((tmp_path / "sub").iterdir()) == []


def test_a_checkpoint_gets_the_normal_file_mode(tmp_path):
    path = save_checkpoint({"arch": "compact_cnn", "arch_kwargs": {}, "T": 2, "dataset": {},
                            "state_dict": {"w": torch.ones(2)}}, tmp_path / "run" / "checkpoint.pt")
    assert mode(path) == FILE_MODE
    assert mode(tmp_path / "run") == FOLDER_MODE  # created like mkdir would
    assert torch.equal(read_checkpoint(path)["state_dict"]["w"], torch.ones(2))
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.pt"]


def test_a_report_folder_and_the_files_in_it_get_the_normal_modes(tmp_path):
    out = tmp_path / "report"
    with report_folder(out, {"kind": "test"}) as staging:
        (staging / "layers.csv").write_bytes(b"layer\n")
        (staging / "figures").mkdir()
        (staging / "figures" / "a.png").write_bytes(b"png")
    assert mode(out) == FOLDER_MODE
    assert mode(out / "figures") == FOLDER_MODE
    for name in ("layers.csv", MARKER, "figures/a.png"):
        assert mode(out / name) == FILE_MODE, name
    assert json.loads((out / MARKER).read_text())["kind"] == "test"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no staging folder left


def test_a_failed_report_leaves_the_previous_report_and_no_staging_folder(tmp_path):
    out = tmp_path / "report"
    with report_folder(out, {"kind": "first"}) as staging:
        (staging / "layers.csv").write_bytes(b"first\n")
    with pytest.raises(RuntimeError, match="boom"):
        with report_folder(out, {"kind": "first"}) as staging:
            (staging / "layers.csv").write_bytes(b"second\n")
            raise RuntimeError("boom")
    assert (out / "layers.csv").read_bytes() == b"first\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


WRITE_ALL = """
import json, os, stat, sys
os.umask(int(sys.argv[2], 8))  # before spikescope is imported: the umask it reads
import torch
from pathlib import Path
from spikescope.atomic import atomic_path
from spikescope.checkpoint import save_checkpoint
from spikescope.report.folder import report_folder
root = Path(sys.argv[1])
with atomic_path(root / "file.txt") as tmp:
    tmp.write_text("x")
save_checkpoint({"arch": "a", "arch_kwargs": {}, "T": 1, "dataset": {}, "state_dict": {"w": torch.ones(1)}},
                root / "run" / "checkpoint.pt")
with report_folder(root / "report", {}) as staging:
    (staging / "layers.csv").write_text("x")
print(json.dumps({str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in sorted(root.rglob("*"))}))
"""


@pytest.mark.parametrize("umask, file_mode, folder_mode", [pytest.param("022", 0o644, 0o755, id="umask-022"),
                                                          pytest.param("027", 0o640, 0o750, id="umask-027")])
def test_modes_follow_the_umask_of_the_process(tmp_path, umask, file_mode, folder_mode):
    result = subprocess.run([sys.executable, "-c", WRITE_ALL, str(tmp_path), umask],
                            capture_output=True, text=True, check=True)
    modes = json.loads(result.stdout)
    assert modes == {"file.txt": file_mode, "run": folder_mode, "run/checkpoint.pt": file_mode,
                     "report": folder_mode, "report/layers.csv": file_mode, f"report/{MARKER}": file_mode}
