from pathlib import Path

import pytest

from spikescope.data import FASHION_MNIST_ROOT

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
