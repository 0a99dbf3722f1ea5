"""Reader for the IDX format of (Fashion-)MNIST, gzip-compressed or raw."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from .errors import SpikescopeError, describe

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (`.gz` or raw); any corruption is a one-line `SpikescopeError`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise SpikescopeError(f"data file not found: {path}") from None
    except (OSError, EOFError, zlib.error) as error:
        raise SpikescopeError(f"cannot read {path}: {describe(error)}") from None
    return parse_idx(raw, str(path))


def parse_idx(raw: bytes, name: str = "IDX data") -> np.ndarray:
    """Parse IDX bytes: magic `00 00 <dtype> <ndim>`, big-endian uint32 dims, then the values."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise SpikescopeError(f"{name} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise SpikescopeError(f"{name} is truncated (header cut short)")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise SpikescopeError(f"{name} holds {len(raw) - header} data bytes, but its header {shape} needs {expected}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))
