"""The training recipe the three studies share, and the flags that scale it up.

All studies train the compact CNN on Fashion-MNIST with one recipe, so that a run one study needs
(the baseline at T = 2, say) is trained once and reused by the others: runs live in
`<runs>/<dataset>-T<T>/<arm>/seed<k>/` and a finished run is skipped. The defaults are sized for a
2-core CPU: the first 10,000 training images, 3 epochs, 2,000 test images.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import spikescope

RECIPE = spikescope.TrainConfig(arch="compact_cnn", data="fashion-mnist", epochs=3, lr=2e-3, batch_size=64,
                                limit=10_000, test_limit=2_000, track=500)
ANALYSED = 2_000  # test images every final analysis uses (the first ones of the test split)


def arguments(description: str) -> argparse.ArgumentParser:
    """The flags every study takes."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="seeds per arm (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=RECIPE.epochs, help="default: %(default)s")
    parser.add_argument("--limit", type=int, default=RECIPE.limit,
                        help="training images (default: %(default)s; 0 for the whole training set)")
    parser.add_argument("--test-limit", type=int, default=ANALYSED, help="test images (default: %(default)s)")
    parser.add_argument("--data", default=RECIPE.data, help="dataset (default: %(default)s)")
    parser.add_argument("--data-root", help="folder holding the dataset files")
    parser.add_argument("--arch", default=RECIPE.arch, help="architecture, e.g. resnet20 with --data cifar10")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--runs", default="runs/studies", help="where the training runs live (default: %(default)s)")
    parser.add_argument("--reports", default="reports", help="where the report goes (default: %(default)s)")
    return parser


def recipe(args: argparse.Namespace, **changes) -> spikescope.TrainConfig:
    """The shared recipe with the study's flags and `changes` applied."""
    flags = dataclasses.replace(RECIPE, epochs=args.epochs, limit=args.limit or None, test_limit=args.test_limit,
                                data=args.data, data_root=args.data_root, arch=args.arch, device=args.device)
    return dataclasses.replace(flags, **changes)


def runs_folder(args: argparse.Namespace, config: spikescope.TrainConfig) -> Path:
    """Where the runs of one dataset and T live (shared by the studies)."""
    return Path(args.runs) / f"{config.data}-{config.arch}-T{config.T}"
