"""Write files so that a crash never leaves a half-written output behind."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import SpikescopeError

UMASK = os.umask(0o022)
os.umask(UMASK)  # read once at import: changing the umask later would race with other threads


def check_folder_creatable(folder: str | os.PathLike, flag: str = "--out", sibling_bytes: int = 0,
                           deepest_entry: str = "") -> Path:
    """`folder` as a Path if it is a folder or can be made one; a one-line error otherwise (nothing is left behind).

    Checked before any work: every part of the path fits the file system's name limit (the folder's name with
    `sibling_bytes` more, for a hidden sibling written beside it), the whole path with `deepest_entry` (the
    longest path written inside it) fits its path limit, nothing but folders lies on the way, and a folder can
    really be made where it goes (a probe folder is made and removed: permission bits do not stop root, but a
    read-only or virtual file system does).
    """
    folder = Path(folder)
    ancestor = _existing_ancestor(folder)
    _check_length(folder, ancestor, flag, sibling_bytes, deepest_entry)
    if folder.exists() and not folder.is_dir():
        raise SpikescopeError(f"{flag} {folder} is an existing file; give a folder")
    if not ancestor.is_dir():
        raise SpikescopeError(f"{flag} {folder} cannot be created: {ancestor} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".spikescope-probe.", dir=ancestor))
    except OSError as error:
        raise SpikescopeError(f"{flag} {_shorten(str(folder))} cannot be created: {ancestor} does not take new "
                              f"folders ({error.strerror})") from None
    return folder


def _existing_ancestor(path: Path) -> Path:
    """The nearest path above `path` that exists (a folder, or a file in its place)."""
    ancestor = path.absolute().parent
    while True:
        try:
            if ancestor.exists():
                return ancestor
        except OSError:  # a name too long to look up does not exist either
            pass
        ancestor = ancestor.parent


def _check_length(folder: Path, ancestor: Path, flag: str, sibling_bytes: int, deepest_entry: str) -> None:
    """A one-line error if the file system cannot hold `folder`, a sibling `sibling_bytes` longer, or
    `deepest_entry` inside it."""
    name_max, path_max = os.pathconf(ancestor, "PC_NAME_MAX"), os.pathconf(ancestor, "PC_PATH_MAX")
    target = folder.absolute()
    too_long = [part for part in target.parts[1:] if len(os.fsencode(part)) > name_max]
    if not too_long and len(os.fsencode(target.name)) + sibling_bytes > name_max:
        too_long = [target.name]
    if too_long:
        limit = name_max - sibling_bytes if too_long == [target.name] else name_max
        raise SpikescopeError(f"{flag} {_shorten(str(folder))} has a name of {len(os.fsencode(too_long[0]))} bytes "
                              f"({_shorten(too_long[0])}); this file system takes {limit} at most: choose a shorter "
                              "name")
    if len(os.fsencode(str(target / deepest_entry))) >= path_max:
        raise SpikescopeError(f"{flag} {_shorten(str(folder))} is too long a path for this file system "
                              f"({path_max} bytes with the files inside): choose a shorter one")


def _shorten(text: str, keep: int = 60) -> str:
    """`text` cut to about `keep` characters for an error message."""
    return text if len(text) <= keep else f"{text[:keep // 2]}...{text[-keep // 2:]}"


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of `atomic_path(target)` calls that were killed before their rename.

    Only for a target with a single writer (a training run resuming its own checkpoint).
    """
    target = Path(target)
    stale = list(target.parent.glob(f".{target.name}.*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success rename it over `target`.

    The rename is atomic on POSIX, so readers see either the old file or the complete
    new one. On an exception the temporary file is removed and `target` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.fchmod(fd, 0o666 & ~UMASK)  # mkstemp creates 0600; give the file the permissions open() would
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)
