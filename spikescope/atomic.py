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


def check_folder_creatable(folder: str | os.PathLike, flag: str = "--out") -> Path:
    """`folder` as a Path if it is a folder or can be made one; a one-line error otherwise (nothing is created)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SpikescopeError(f"{flag} {folder} is an existing file; give a folder")
    ancestor = folder.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise SpikescopeError(f"{flag} {folder} cannot be created: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise SpikescopeError(f"{flag} {folder} cannot be created: no permission to write in {ancestor}")
    return folder


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
