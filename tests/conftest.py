import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from spikescope.data import FASHION_MNIST_ROOT

# CI runs every property test on the same examples (derandomized), so a red build is reproducible and a
# green one cannot turn red without a change; other settings stay as each test sets them.
settings.register_profile("ci", settings.get_profile("default"), derandomize=True)
if "CI" in os.environ:
    settings.load_profile("ci")

needs_fashion_mnist = pytest.mark.skipif(
    not (FASHION_MNIST_ROOT / "t10k-images-idx3-ubyte.gz").exists(),
    reason="Debian package dataset-fashion-mnist is not installed (make test installs it)",
)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run the test inside an empty temporary folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


class CreatesAFile:
    """A pickle payload that creates `path` when unpickled: proof that a loader ran code it should not."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def write_cifar10(folder, images_per_batch=4):
    """CIFAR-10's python batches in their real format (pickled dicts of numpy arrays)."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (images_per_batch, 3072), dtype=np.uint8),
                 b"labels": list(rng.integers(0, 10, images_per_batch))}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
