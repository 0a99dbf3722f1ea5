"""Reader for the CIFAR-10/100 "python version" batches, without running arbitrary pickle code.

The batches are pickled dicts of numpy arrays. A plain `pickle.load` would execute whatever a
tampered file asks for; this reader allows only the globals that rebuild numpy arrays.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from .errors import SpikescopeError, describe

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Images `[N, 3, 32, 32]` uint8 and labels `[N]` from one CIFAR batch file."""
    try:
        with open(path, "rb") as f:
            batch = _ArraysOnlyUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except FileNotFoundError:
        raise SpikescopeError(f"CIFAR batch not found: {path}") from None
    except Exception as error:  # a corrupt pickle can raise almost anything; all of it is bad input
        raise SpikescopeError(f"{path} is not a readable CIFAR batch ({describe(error)})") from None
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise SpikescopeError(f"{path} is not a CIFAR batch (needs keys b'data' and {label_key!r})")
    data = np.asarray(batch[b"data"])
    try:
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise SpikescopeError(f"{path} holds labels that are not integers") from None
    if (data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.ndim != 1
            or len(labels) != len(data)):
        raise SpikescopeError(f"{path} has data of shape {data.shape} ({data.dtype}) and {len(labels)} labels; "
                              "expected uint8 [N, 3072] and N labels")
    return data.reshape(-1, 3, 32, 32), labels
