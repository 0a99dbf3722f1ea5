import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from conftest import CreatesAFile, needs_fashion_mnist, write_cifar10
from spikescope.data import grating, gratings, load_dataset, make_loader
from spikescope.errors import SpikescopeError
from spikescope.idx import parse_idx, read_idx


@needs_fashion_mnist
def test_full_fashion_mnist_has_the_official_sizes_and_balanced_labels():
    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10


@needs_fashion_mnist
def test_bundled_sample_is_the_first_2000_official_test_images_in_two_disjoint_halves():
    official = load_dataset("fashion-mnist", "test", limit=2000)
    halves = [load_dataset("fashion-mnist-sample", split) for split in ("train", "test")]
    assert [len(h) for h in halves] == [1000, 1000]
    assert torch.equal(torch.cat([h.images for h in halves]), official.images)
    assert torch.equal(torch.cat([h.labels for h in halves]), official.labels)


def test_normalisation_gives_roughly_zero_mean_and_unit_variance():
    images, _ = load_dataset("fashion-mnist-sample", "test")[:]
    assert abs(images.mean().item()) < 0.1
    assert abs(images.std().item() - 1) < 0.15


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_idx_reader_reads_gz_and_raw_and_names_every_kind_of_corruption(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), array)
    raw = gzip.decompress((tmp_path / "a.gz").read_bytes())
    (tmp_path / "a").write_bytes(raw)
    assert np.array_equal(read_idx(tmp_path / "a"), array)
    with pytest.raises(SpikescopeError, match="needs 24"):
        parse_idx(raw[:-1])
    with pytest.raises(SpikescopeError, match="bad magic"):
        parse_idx(b"\x01" + raw[1:])
    with pytest.raises(SpikescopeError, match="header cut short"):
        parse_idx(raw[:9])
    (tmp_path / "cut.gz").write_bytes((tmp_path / "a.gz").read_bytes()[:-8])
    with pytest.raises(SpikescopeError, match="cannot read"):
        read_idx(tmp_path / "cut.gz")


def test_fashion_mnist_folder_without_files_names_the_file_and_the_folder(tmp_path):
    with pytest.raises(SpikescopeError, match=f"t10k-images-idx3-ubyte.gz not found in {tmp_path}"):
        load_dataset("fashion-mnist", "test", root=tmp_path)


def test_fashion_mnist_files_in_another_root_are_read(tmp_path):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (5, 28, 28)))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 2, 3, 9]))
    dataset = load_dataset("fashion-mnist", "test", root=tmp_path)
    assert dataset.labels.tolist() == [0, 1, 2, 3, 9]


def test_cifar10_python_batches_are_read(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py")
    train = load_dataset("cifar10", "train", root=tmp_path)
    test = load_dataset("cifar10", "test", root=tmp_path / "cifar-10-batches-py")
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (4, 3, 32, 32)
    raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes())
    assert np.array_equal(test.images.numpy().reshape(4, -1), raw[b"data"])


def test_cifar100_python_batches_are_read(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    data = np.zeros((3, 3072), dtype=np.uint8)
    (folder / "test").write_bytes(pickle.dumps({b"data": data, b"fine_labels": [0, 50, 99]}))
    assert load_dataset("cifar100", "test", root=tmp_path).labels.tolist() == [0, 50, 99]


def test_a_cifar_batch_that_would_run_code_is_refused_and_the_code_never_runs(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    victim = tmp_path / "created-by-unpickling"
    (folder / "test").write_bytes(pickle.dumps({b"data": CreatesAFile(victim), b"fine_labels": [0]}))
    with pytest.raises(SpikescopeError, match="refusing to load"):
        load_dataset("cifar100", "test", root=tmp_path)
    assert not victim.exists()


def test_cifar_labels_that_are_not_integers_are_refused(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "test").write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"fine_labels": [b"a"]}))
    with pytest.raises(SpikescopeError, match="labels that are not integers"):
        load_dataset("cifar100", "test", root=tmp_path)


def test_missing_cifar_says_which_file_and_where():
    with pytest.raises(SpikescopeError, match="data_batch_1 not found in /nonexistent"):
        load_dataset("cifar10", "train", root="/nonexistent")


def test_vertical_stripes_vary_only_along_the_width_and_horizontal_only_along_the_height():
    vertical = grating(28, 0, cycles=3, phase=0.4)
    horizontal = grating(28, 1, cycles=3, phase=0.4)
    assert np.allclose(vertical, vertical[:1, :]) and vertical[0].std() > 0.3
    assert np.allclose(horizontal, horizontal[:, :1]) and horizontal[:, 0].std() > 0.3
    diagonal = grating(28, 2, cycles=3, phase=0.0)
    assert np.allclose(diagonal, diagonal.T)


def test_gratings_are_labelled_by_orientation_and_reproducible():
    a, b = gratings(300, seed=5), gratings(300, seed=5)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert set(a.labels.tolist()) == {0, 1, 2}
    for image, label in zip(a.images[:30, 0].float(), a.labels[:30]):
        if label == 0:
            assert (image - image[:1]).abs().max() == 0
        if label == 1:
            assert (image - image[:, :1]).abs().max() == 0
    assert not torch.equal(gratings(50, seed=6).images, a.images[:50])


def test_limit_takes_the_first_images_and_shuffling_is_a_function_of_the_seed():
    dataset = load_dataset("fashion-mnist-sample", "train", limit=100)
    assert torch.equal(dataset.images, load_dataset("fashion-mnist-sample", "train").images[:100])

    def order(seed):
        return torch.cat([labels for _, labels in make_loader(dataset, 16, shuffle=True, seed=seed)])

    assert torch.equal(order(1), order(1))
    assert not torch.equal(order(1), order(2))
    assert sorted(order(1).tolist()) == sorted(dataset.labels.tolist())
    sequential = torch.cat([labels for _, labels in make_loader(dataset, 16)])
    assert torch.equal(sequential, dataset.labels)


def test_unknown_dataset_and_bad_limit_are_clear_errors():
    with pytest.raises(SpikescopeError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(SpikescopeError, match="the first 0 images of gratings were asked for; ask for at least 1"):
        load_dataset("gratings", limit=0)
