"""The training recipe the three studies share, and the flags that scale it up.

All studies train the compact CNN on Fashion-MNIST with one recipe, so that a run one study needs
(the baseline at T = 2, say) is trained once and reused by the others: runs live in
`<runs>/<dataset>-<arch>[-<key><value>...]-T<T>/<arm>/seed<k>/` and a finished run is skipped. The defaults
are sized for a 2-core CPU: the first 10,000 training images, 3 epochs, 2,000 test images. Another
architecture (`--arch resnet20 --arch-kw width=0.25`) gets its own runs and its own report folder,
`reports/<study>/<arch>[-<key><value>...]/`, so that the compact CNN's reports stay beside it.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import spikescope
from spikescope.cli.common import arch_kwarg

RECIPE = spikescope.TrainConfig(arch="compact_cnn", data="fashion-mnist", epochs=3, lr=2e-3, batch_size=64,
                                limit=10_000, test_limit=2_000, track=500)
ANALYSED = 2_000  # test images every final analysis uses (the first ones of the test split)


def arguments(description: str) -> argparse.ArgumentParser:
    """The flags every study takes."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="seeds per arm (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=RECIPE.epochs, help="default: %(default)s")
    parser.add_argument("--lr", type=float, default=RECIPE.lr, help="peak learning rate (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=RECIPE.limit,
                        help="training images (default: %(default)s; 0 for the whole training set)")
    parser.add_argument("--test-limit", type=int, default=ANALYSED, help="test images (default: %(default)s)")
    parser.add_argument("--data", default=RECIPE.data, help="dataset (default: %(default)s)")
    parser.add_argument("--data-root", help="folder holding the dataset files")
    parser.add_argument("--arch", default=RECIPE.arch, help="architecture, e.g. resnet20 with --data cifar10")
    parser.add_argument("--arch-kw", type=arch_kwarg, action="append", default=[], metavar="KEY=VALUE",
                        help="architecture argument, e.g. width=0.25 for resnet20 (repeatable)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--runs", default="runs/studies", help="where the training runs live (default: %(default)s)")
    parser.add_argument("--reports", default="reports", help="where the report goes (default: %(default)s)")
    return parser


def recipe(args: argparse.Namespace, **changes) -> spikescope.TrainConfig:
    """The shared recipe with the study's flags and `changes` applied."""
    flags = dataclasses.replace(RECIPE, epochs=args.epochs, lr=args.lr, limit=args.limit or None,
                                test_limit=args.test_limit, data=args.data, data_root=args.data_root, arch=args.arch,
                                arch_kwargs=dict(args.arch_kw), device=args.device)
    return dataclasses.replace(flags, **changes)


def network_name(config: spikescope.TrainConfig) -> str:
    """The architecture with its own arguments, as folder names carry it: `resnet20-width0.25`."""
    return "-".join([config.arch, *(f"{key}{value}" for key, value in sorted(config.arch_kwargs.items()))])


def runs_folder(args: argparse.Namespace, config: spikescope.TrainConfig) -> Path:
    """Where the runs of one dataset, network and T live (shared by the studies)."""
    return Path(args.runs) / f"{config.data}-{network_name(config)}-T{config.T}"


def report_folder(args: argparse.Namespace, study: str) -> Path:
    """`reports/<study>/` for the shared recipe's network, `reports/<study>/<network>/` for another one."""
    config = recipe(args)
    folder = Path(args.reports) / study
    return folder if network_name(config) == RECIPE.arch else folder / network_name(config)
