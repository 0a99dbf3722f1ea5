"""Random and truncated bytes given to every file reader end in a one-line SpikescopeError, nothing else."""
import gzip
import pickle
import tempfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikescope.checkpoint import bundled_checkpoint, load
from spikescope.cifar import read_cifar_batch
from spikescope.errors import SpikescopeError
from spikescope.idx import read_idx

CHECKPOINT = bundled_checkpoint("baseline").read_bytes()
IDX = (Path(bundled_checkpoint("baseline")).parent / "fashion-mnist-sample-labels-idx1-ubyte.gz").read_bytes()
CIFAR = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]}, protocol=2)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(reader, data: bytes) -> None:
    """Run `reader` on a file holding `data`: it may succeed or raise SpikescopeError with one line."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input"
        path.write_bytes(data)
        try:
            reader(path)
        except SpikescopeError as error:
            assert "\n" not in str(error) and str(error)


def cut(data: bytes) -> st.SearchStrategy[bytes]:
    return st.integers(0, len(data) - 1).map(lambda n: data[:n])


def flip(data: bytes) -> st.SearchStrategy[bytes]:
    return st.tuples(st.integers(0, len(data) - 1), st.integers(1, 255)).map(
        lambda p: data[:p[0]] + bytes([data[p[0]] ^ p[1]]) + data[p[0] + 1:])


@FUZZ
@given(st.one_of(st.binary(max_size=4096), cut(CHECKPOINT), flip(CHECKPOINT)))
def test_checkpoint_loader_survives_random_truncated_and_corrupted_bytes(data):
    outcome(load, data)


ODD_VALUES = st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=5), st.lists(st.integers(), max_size=3),
                      st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.just(torch.zeros(2)))
FIELDS = ["format_version", "arch", "arch_kwargs", "T", "dataset", "state_dict", "train_config", "history"]


@FUZZ
@given(st.sampled_from(FIELDS), ODD_VALUES)
def test_checkpoint_loader_survives_fields_of_the_wrong_type_or_value(field, value):
    checkpoint = torch.load(bundled_checkpoint("baseline"), weights_only=True)
    checkpoint[field] = value

    def save_and_load(path):
        torch.save(checkpoint, path)
        load(path)

    with tempfile.TemporaryDirectory() as folder:
        try:
            save_and_load(Path(folder) / "c.pt")
        except SpikescopeError as error:
            assert "\n" not in str(error)


@FUZZ
@given(st.one_of(st.binary(max_size=2048), cut(IDX), flip(IDX), cut(gzip.decompress(IDX))))
def test_idx_reader_survives_random_truncated_and_corrupted_bytes(data):
    outcome(read_idx, data)


@FUZZ
@given(st.one_of(st.binary(max_size=2048), cut(CIFAR), flip(CIFAR)))
def test_cifar_reader_survives_random_truncated_and_corrupted_bytes(data):
    outcome(lambda path: read_cifar_batch(path, b"labels"), data)
