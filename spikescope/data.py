"""Datasets: Fashion-MNIST (IDX files), CIFAR-10/100 (python batches), a bundled sample, gratings.

Every dataset is an `ImageSet`: uint8 images `[N, C, H, W]` in memory plus labels and the
normalisation that turns them into network input. Nothing is ever downloaded; a missing
file is a one-line error that says which file and where spikescope looked.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

from .cifar import read_cifar_batch
from .errors import SpikescopeError, note
from .idx import read_idx

FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
DEFAULT_CIFAR_ROOT = Path("data")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
GRATING_CLASSES = ("vertical stripes", "horizontal stripes", "diagonal stripes")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_CLASSES = tuple(f"class {i}" for i in range(100))  # fine labels 0..99 (names are in the dataset's meta file)
DATASETS = ("fashion-mnist", "fashion-mnist-sample", "cifar10", "cifar100", "gratings")
LABEL_SETS = {"fashion-mnist": FASHION_MNIST_CLASSES, "fashion-mnist-sample": FASHION_MNIST_CLASSES,
              "cifar10": CIFAR10_CLASSES, "cifar100": CIFAR100_CLASSES, "gratings": GRATING_CLASSES}
SAMPLE_SPLIT = 1000  # the bundled sample's first 1000 images are its "train" half, the rest its "test" half


@dataclass
class ImageSet:
    """Images `[N, C, H, W]` (uint8) with labels `[N]` (int64) and their normalisation."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised float images and labels; `index` may be an int, a slice or a list (a batch)."""
        mean = torch.tensor(self.mean).view(-1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1)
        return (self.images[index].float() / 255 - mean) / std, self.labels[index]

    def subset(self, limit: int | None) -> "ImageSet":
        """The first `limit` images (deterministic); `None` keeps all."""
        if limit is None:
            return self
        if limit < 1:
            raise SpikescopeError(f"the first {limit:,} images of {self.name} were asked for; ask for at least 1")
        if limit > len(self):
            used = f"all {len(self):,} are" if len(self) > 1 else "that one is"
            note(f"the first {limit:,} images of {self.name} were asked for, but it has {len(self):,}; {used} used")
        return self.take(slice(None, limit))

    def take(self, index: slice) -> "ImageSet":
        """The images and labels at `index`, with the same normalisation and classes."""
        return dataclasses.replace(self, images=self.images[index], labels=self.labels[index])

    def normalisation(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}


def load_dataset(name: str, split: str = "test", root: str | Path | None = None, limit: int | None = None,
                 seed: int = 0) -> ImageSet:
    """Load dataset `name` (one of `DATASETS`), split 'train' or 'test', optionally its first `limit` images.

    `root` overrides where the files are looked for; `seed` only affects the synthetic gratings.
    """
    if split not in ("train", "test"):
        raise SpikescopeError(f"split must be 'train' or 'test', got {split!r}")
    loaders = {
        "fashion-mnist": lambda: fashion_mnist(split, Path(root) if root else FASHION_MNIST_ROOT),
        "fashion-mnist-sample": lambda: fashion_mnist_sample(split),
        "cifar10": lambda: cifar(10, split, Path(root) if root else DEFAULT_CIFAR_ROOT),
        "cifar100": lambda: cifar(100, split, Path(root) if root else DEFAULT_CIFAR_ROOT),
        "gratings": lambda: gratings(2000 if split == "train" else 500, seed=seed + (0 if split == "train" else 1)),
    }
    if name not in loaders:
        raise SpikescopeError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return loaders[name]().subset(limit)


def _fashion_from_idx(name: str, images_path: Path, labels_path: Path) -> ImageSet:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1 or len(images) != len(labels):
        raise SpikescopeError(f"{images_path} and {labels_path} do not hold matching 28x28 images and labels")
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise SpikescopeError(f"{labels_path} holds label {labels.max()}, but Fashion-MNIST has 10 classes")
    return ImageSet(name, torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)),
                    (0.2860,), (0.3530,), FASHION_MNIST_CLASSES)


def fashion_mnist(split: str, root: Path = FASHION_MNIST_ROOT) -> ImageSet:
    """Fashion-MNIST from the four IDX files (`train-*` / `t10k-*`, `.gz` or not) in `root`."""
    prefix = "train" if split == "train" else "t10k"
    paths = []
    for kind in ("images-idx3", "labels-idx1"):
        candidates = [root / f"{prefix}-{kind}-ubyte.gz", root / f"{prefix}-{kind}-ubyte"]
        found = next((p for p in candidates if p.exists()), None)
        if found is None:
            raise SpikescopeError(f"Fashion-MNIST file {candidates[0].name} not found in {root} "
                                  "(install the Debian package dataset-fashion-mnist or pass --data-root)")
        paths.append(found)
    return _fashion_from_idx("fashion-mnist", *paths)


def fashion_mnist_sample(split: str) -> ImageSet:
    """The bundled sample: the first 2000 Fashion-MNIST test images, split into two halves of 1000.

    Its 'train' half exists so that demos and tests can train without the full dataset; its
    'test' half is disjoint from it. Both are images of the official test set.
    """
    bundled = resources.files("spikescope") / "bundled"
    full = _fashion_from_idx("fashion-mnist-sample",
                             Path(str(bundled / "fashion-mnist-sample-images-idx3-ubyte.gz")),
                             Path(str(bundled / "fashion-mnist-sample-labels-idx1-ubyte.gz")))
    part = slice(None, SAMPLE_SPLIT) if split == "train" else slice(SAMPLE_SPLIT, None)
    return full.take(part)


def cifar(num_classes: int, split: str, root: Path = DEFAULT_CIFAR_ROOT) -> ImageSet:
    """CIFAR-10 or CIFAR-100 from the python batches in `root` or its `cifar-10-batches-py` / `cifar-100-python`."""
    if num_classes == 10:
        folder, label_key = "cifar-10-batches-py", b"labels"
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    else:
        folder, label_key = "cifar-100-python", b"fine_labels"
        names = [split]
        mean, std = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
    directory = root / folder if (root / folder).is_dir() else root
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        where = (f"{directory.absolute()}, the default data root ({DEFAULT_CIFAR_ROOT}/ under the current folder)"
                 if root == DEFAULT_CIFAR_ROOT else str(directory))
        raise SpikescopeError(f"CIFAR-{num_classes} file {missing[0]} not found in {where}: put the python-version "
                              f"batches ({folder}/) there, or pass --data-root FOLDER (data_root= in Python)")
    parts = [read_cifar_batch(directory / n, label_key) for n in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise SpikescopeError(f"CIFAR-{num_classes} labels in {directory} fall outside 0..{num_classes - 1}")
    return ImageSet(f"cifar{num_classes}", torch.from_numpy(images), torch.from_numpy(labels), mean, std,
                    LABEL_SETS[f"cifar{num_classes}"])


def grating(size: int, orientation: int, cycles: float, phase: float) -> np.ndarray:
    """One `size x size` sinusoidal grating in [0, 1] with `cycles` periods across the image.

    Orientation 0 = vertical stripes (intensity varies along the width only: horizontal
    frequency), 1 = horizontal stripes (varies along the height only: vertical frequency),
    2 = diagonal stripes (varies along both axes equally).
    """
    y, x = np.mgrid[0:size, 0:size] / size
    position = {0: x, 1: y, 2: (x + y) / math.sqrt(2)}[orientation]
    return 0.5 + 0.5 * np.cos(2 * math.pi * cycles * position + phase)


def gratings(count: int, size: int = 28, seed: int = 0, cycles: tuple[float, float] = (2.0, 6.0)) -> ImageSet:
    """A synthetic dataset of gratings labelled by orientation (see `grating`), with random frequency and phase.

    Its frequency content is known exactly, which makes it the reference input for spectrum tests.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(GRATING_CLASSES), count)
    frequencies = rng.uniform(*cycles, count)
    phases = rng.uniform(0, 2 * math.pi, count)
    images = np.stack([grating(size, int(o), f, p) for o, f, p in zip(labels, frequencies, phases)])
    images = np.round(images * 255).astype(np.uint8)[:, None]
    return ImageSet("gratings", torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)),
                    (0.5,), (0.35,), GRATING_CLASSES)


def make_loader(dataset: ImageSet, batch_size: int, shuffle: bool = False, seed: int = 0) -> DataLoader:
    """Batches of `(images, labels)`; with `shuffle`, the order is a pure function of `seed`.

    Each batch is sliced from memory in one call (no per-image collation).
    """
    if batch_size < 1:
        raise SpikescopeError(f"--batch-size must be positive, got {batch_size}")
    if shuffle:
        generator = torch.Generator().manual_seed(seed)
        sampler = RandomSampler(range(len(dataset)), generator=generator)
    else:
        sampler = SequentialSampler(range(len(dataset)))
    return DataLoader(dataset, sampler=BatchSampler(sampler, batch_size, drop_last=False), batch_size=None)
