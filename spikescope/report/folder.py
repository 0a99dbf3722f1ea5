"""Report folders written whole or not at all, and never over a user's own files.

A report is assembled in a hidden sibling folder and renamed into place. An existing folder is
replaced only if it is empty or holds our marker file (a spikescope report); anything else is
refused before any work starts, so `--out .` or `--out ~` cannot cost anyone their files.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..atomic import UMASK, check_folder_creatable
from ..errors import SpikescopeError

MARKER = ".spikescope-report"
GENERIC_WORDS = r"checkpoint|ckpt|model|weights|state_dict|last|best|final|latest|epoch|step|\d+"
GENERIC_STEM = re.compile(rf"(?:(?:{GENERIC_WORDS})[-_.]?)+", re.IGNORECASE)  # model_best, checkpoint-epoch10, ...


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The marker of a spikescope report folder, or None if `folder` is not one."""
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def check_output_folder(out: str | os.PathLike) -> Path:
    """`out` as a Path if a report may be written there; otherwise a one-line error (nothing is created)."""
    out = check_folder_creatable(out)
    if out.is_dir() and any(out.iterdir()) and read_marker(out) is None:
        raise SpikescopeError(f"--out {out} is a non-empty folder that is not a spikescope report (no {MARKER} "
                              "inside); spikescope never overwrites such a folder: choose a new or empty one")
    return out


def default_report_folder(checkpoint: Path, root: Path = Path("reports"), suffix: str = "") -> Path:
    """`root/<name><suffix>` for a checkpoint: its file name, or its run folder's name when the file name is generic
    (`runs/fsta/checkpoint.pt` -> `reports/fsta`). A folder holding another checkpoint's report is never
    reused: `-2`, `-3`, ... are appended instead."""
    name = checkpoint.stem
    if GENERIC_STEM.fullmatch(name) and checkpoint.absolute().parent.name:
        name = checkpoint.absolute().parent.name
    name += suffix
    source = str(checkpoint.resolve())
    candidate, number = root / name, 1
    while candidate.exists() and (read_marker(candidate) or {}).get("source") != source:
        if candidate.is_dir() and not any(candidate.iterdir()):
            break
        number += 1
        candidate = root / f"{name}-{number}"
    return candidate


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold back Ctrl-C (and SIGTERM) for the few renames that swap a folder into place."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {s: signal.signal(s, lambda number, frame: received.append(number))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if received:
            signal.raise_signal(received[0])


@contextmanager
def _terminate_raises() -> Iterator[None]:
    """Let SIGTERM (a `kill`, a scheduler's time limit) unwind like Ctrl-C, so that cleanup code runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(number: int, frame: Any) -> None:
        raise SystemExit(128 + number)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _remove_leftovers(target: Path) -> None:
    """Staging and set-aside folders of an earlier run at `target` that was killed outright (SIGKILL)."""
    for pattern in (f".{target.name}.*.partial", f".{target.name}.*.old"):
        for leftover in target.parent.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


def _swap_into_place(staging: Path, target: Path) -> None:
    """Rename `staging` to `target`; a previous `target` is set aside first, removed after, restored on failure."""
    old = None
    if target.exists():  # renamed onto an empty placeholder: POSIX replaces an empty folder
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.rename(target, old)
    try:
        os.rename(staging, target)
    except OSError:
        if old is not None:
            os.rename(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def report_folder(out: str | os.PathLike, marker: dict[str, Any]) -> Iterator[Path]:
    """Yield an empty staging folder; when the block succeeds it replaces `out` as a whole.

    On any exception (Ctrl-C and SIGTERM included) the staging folder is removed and `out` is left as
    it was: absent, or the previous complete report. The swap itself defers both signals. `marker` is
    stored in `out/.spikescope-report`.
    """
    out = check_output_folder(out)
    target = out.resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(target)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    except OSError as error:
        raise SpikescopeError(f"--out {out} cannot be created ({error.strerror})") from None
    with _terminate_raises():
        try:
            os.chmod(staging, 0o777 & ~UMASK)  # mkdtemp makes 0700; give the folder mkdir's permissions
            yield staging
            (staging / MARKER).write_text(json.dumps({"format": "spikescope-report", **marker}, indent=1))
            check_output_folder(out)  # the folder may have changed while the report was computed
            with _interrupts_deferred():
                _swap_into_place(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
