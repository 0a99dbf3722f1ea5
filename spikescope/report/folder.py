"""Report folders written whole or not at all, and never over a user's own files.

A report is assembled in a hidden sibling folder and renamed into place. An existing folder is
replaced only if it is empty or a report of the same kind that holds nothing but what that report
wrote (its marker file lists it); anything else is refused before any work starts, so `--out .`,
`--out ~` or a rerun cannot cost anyone their files. Default folder names come from one rule for
every kind of report and are never shared by two different reports.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..atomic import UMASK, check_folder_creatable
from ..errors import SpikescopeError

MARKER = ".spikescope-report"
GENERIC_WORDS = r"checkpoint|ckpt|model|weights|state_dict|last|best|final|latest|epoch|step|\d+"
GENERIC_STEM = re.compile(rf"(?:(?:{GENERIC_WORDS})[-_.]?)+", re.IGNORECASE)  # model_best, checkpoint-epoch10, ...
STAGING_AFFIXES = len(".") + len(".") + 8 + len(".partial")  # `.{name}.XXXXXXXX.partial`: mkdtemp's 8 random letters
DEEPEST_ENTRY = "figures/membrane_potentials.png"  # the longest path a report writes inside its folder
DEFAULT_NAME_MAX = 100  # bytes of a default folder name; longer names are cut and end in a hash of the whole
WRITTEN_BEFORE_FILE_LISTS = {  # what each kind of report wrote when markers did not yet list their files
    "analyze": {"report.html", "plotly.min.js", "layers.csv", "timesteps.csv", "channels.csv", "energy.csv",
                "spectra.npz", "similarity.npz", "spikes.npz", "summary.json", "attributions.npz", "sam.npz",
                "membrane.npz", "figures/"},
    "attribute": {"report.html", "plotly.min.js", "attributions.npz", "attribution.json"},
    "compare": {"comparison.html", "comparison.csv", "comparison.json", "plotly.min.js"},
}


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The marker of a spikescope report folder, or None if `folder` is not one."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def report_marker(kind: str, sources: Sequence[str | Path], variant: str = "", **extra: Any) -> dict[str, Any]:
    """What a report's marker records: its kind, the model files it was made from (resolved, in order) and the
    variant that tells reports of the same kind and files apart (attribute's method, compare's groups)."""
    return {"kind": kind, "sources": [str(Path(source).resolve()) for source in sources], "variant": variant,
            **extra}


def _identity(marker: dict[str, Any]) -> tuple[Any, ...]:
    """(kind, sources, variant) of a marker; a marker of spikescope 0.1 names one "source" and no variant."""
    sources = marker.get("sources", [marker["source"]] if marker.get("source") else [])
    return marker.get("kind"), list(sources), marker.get("variant", "")


def _entries(folder: Path) -> set[str]:
    """The top-level entries of `folder` as a marker lists them: files by name, folders as `name/`."""
    return {entry.name + ("/" if entry.is_dir() else "") for entry in folder.iterdir() if entry.name != MARKER}


def check_output_folder(out: str | os.PathLike, kind: str) -> Path:
    """`out` as a Path if a report of `kind` may be written there; otherwise a one-line error, before any work.

    The path must be creatable and short enough for the file system; an existing folder must be empty or a
    report of the same kind holding nothing but the entries its marker lists (markers written before the
    lists existed: the entries that kind of report writes), so a rerun never deletes a user's files.
    """
    out = check_folder_creatable(out, sibling_bytes=STAGING_AFFIXES, deepest_entry=DEEPEST_ENTRY)
    if out.is_dir() and any(out.iterdir()):
        _check_replaceable(out, kind)
    return out


def _check_replaceable(out: Path, kind: str) -> None:
    """A one-line error unless the non-empty folder `out` is a report of `kind` holding only what it wrote."""
    marker = read_marker(out)
    if marker is None:
        raise SpikescopeError(f"--out {out} is a non-empty folder that is not a spikescope report (no {MARKER} "
                              "inside); spikescope never overwrites such a folder: choose a new or empty one")
    if marker.get("kind") != kind:
        raise SpikescopeError(f"--out {out} holds a report of spikescope {marker.get('kind')}, which spikescope {kind} "
                              "would replace: choose another --out")
    foreign = _foreign_entries(out, marker)
    if foreign:
        raise SpikescopeError(f"--out {out} holds files that the report did not write ({', '.join(foreign[:3])}"
                              f"{', ...' if len(foreign) > 3 else ''}); rewriting the report would delete them: "
                              "move them out or choose another --out")


def _foreign_entries(folder: Path, marker: dict[str, Any]) -> list[str]:
    """The entries of a report folder that its report did not write (the user's own files)."""
    listed = marker.get("files")
    written = set(listed) if isinstance(listed, list) else WRITTEN_BEFORE_FILE_LISTS.get(marker.get("kind"), set())
    return sorted(_entries(folder) - written)


def model_label(source: Path) -> str:
    """A model file's short name (in folder names and comparisons): its stem, or its run folder's name when the
    stem is generic (`runs/fsta/checkpoint.pt` -> `fsta`)."""
    if GENERIC_STEM.fullmatch(source.stem) and source.absolute().parent.name:
        return source.absolute().parent.name
    return source.stem


def _folder_name(text: str) -> str:
    """`text` as a safe folder name: other characters than letters, digits, `_`, `.` and `-` become `_`, it never
    starts with a dot (hidden, or `..`), and a long one is cut and ends in a hash of the whole."""
    name = re.sub(r"[^\w.-]", "_", text).lstrip(".") or "report"
    if len(name.encode()) > DEFAULT_NAME_MAX:  # bytes, not characters: the file system counts bytes
        kept = name.encode()[:DEFAULT_NAME_MAX - 9].decode(errors="ignore")  # never half a character
        name = f"{kept}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return name


def default_report_folder(kind: str, sources: Sequence[str | Path], variant: str = "",
                          names: Sequence[str] | None = None, root: Path = Path("reports")) -> Path:
    """Where a report goes by default: `root/<label>` for analyze, `root/<label>-<method>` for attribute (the
    method is the `variant`), `root/<label>-frequency` for frequency, `root/compare-<first>-<last>` for compare,
    labels taken from `names` or else from the model files. A folder is reused only by a report of the same kind,
    files and variant that holds nothing of the user's; otherwise `-2`, `-3`, ... is appended, so two reports never
    share one."""
    labels = list(names) if names is not None else [model_label(Path(source)) for source in sources]
    if kind == "compare":
        name = "compare-" + "-".join(dict.fromkeys([labels[0], labels[-1]]))
    else:
        name = labels[0] + (f"-{variant}" if kind == "attribute" and variant else "-frequency" if kind == "frequency"
                            else "")
    name = _folder_name(name)
    identity = _identity(report_marker(kind, sources, variant))
    candidate, number = root / name, 1
    while candidate.exists():
        marker = read_marker(candidate)
        if (marker is not None and _identity(marker) == identity and not _foreign_entries(candidate, marker)) or (
                candidate.is_dir() and not any(candidate.iterdir())):
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
    stored in `out/.spikescope-report` with the list of entries the block wrote, so that a rerun can tell
    them from files a user added (see `check_output_folder`, which refuses a folder of another kind).
    """
    kind = marker.get("kind", "")
    out = check_output_folder(out, kind)
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
            record = {"format": "spikescope-report", **marker, "files": sorted(_entries(staging))}
            (staging / MARKER).write_text(json.dumps(record, indent=1))
            check_output_folder(out, kind)  # the folder may have changed while the report was computed
            with _interrupts_deferred():
                _swap_into_place(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
