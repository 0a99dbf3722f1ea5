"""`spikescope train` and `spikescope train-arms`."""
from __future__ import annotations

import argparse
import dataclasses
import warnings
from pathlib import Path
from typing import Callable

from .. import distributed
from ..arms import ARMS, check_arms, train_arms
from ..compare import compare
from ..data import DATASETS
from ..errors import SpikescopeError, SpikescopeWarning
from ..report.folder import check_output_folder
from ..models import available
from ..train import TrainConfig, train
from .common import DEVICE_HELP, arch_kwarg, command_line, non_negative_int, positive_int

TRAIN_EXAMPLES = """examples:
  spikescope train --data fashion-mnist --epochs 3 --out runs/baseline
  spikescope train --data fashion-mnist --epochs 3 --fsta --out runs/fsta
  spikescope train --data fashion-mnist --epochs 3 --fsta temporal --track 500 --out runs/fsta-temporal
  spikescope train --data fashion-mnist-sample --limit 500 --arch-kw width=8 --out runs/smoke
  spikescope train --arch resnet20 --arch-kw width=0.25 --limit 20000 --epochs 2 --lr 0.005 --out runs/r20
  spikescope train --resume runs/baseline/checkpoint.pt
  spikescope train --resume runs/baseline/checkpoint.pt --epochs 5      # extend a finished run
  python -m torch.distributed.run --nproc_per_node=2 -m spikescope train --data fashion-mnist --out runs/ddp

Under torchrun, --batch-size is the global batch, split evenly among the processes (DistributedDataParallel;
gloo on the CPU, nccl with --device cuda); rank 0 writes the run folder.
"""

ARMS_EXAMPLES = """examples:
  spikescope train-arms --data fashion-mnist --limit 10000 --epochs 3 --seeds 3 --out runs/arms
  spikescope train-arms --arms baseline,fsta,fsta-temporal,fsta-spatial --seeds 5 --track 500 --out runs/ablation

Runs live in OUT/<arm>/seed<k>/; finished runs are skipped and unfinished ones resumed, so the same
command continues an interrupted study. The comparison of the arms goes to OUT/comparison/.
"""

SETTINGS = {"arch": "--arch", "arch_kw": "--arch-kw", "T": "--T", "fsta": "--fsta", "data": "--data",
            "data_root": "--data-root", "batch_size": "--batch-size", "lr": "--lr", "optimizer": "--optimizer",
            "momentum": "--momentum", "weight_decay": "--weight-decay", "label_smoothing": "--label-smoothing",
            "limit": "--limit", "test_limit": "--test-limit", "seed": "--seed", "out": "--out", "track": "--track"}


def _recipe_flags(parser: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    """The flags of a training recipe (everything but FSTA, the seed and where the run goes)."""
    parser.add_argument("--arch", default=defaults.arch, choices=available(),
                        help="architecture (default: %(default)s)")
    parser.add_argument("--arch-kw", type=arch_kwarg, action="append", default=[], metavar="KEY=VALUE",
                        help="extra architecture argument (repeatable): width=8 is the compact CNN's first-layer "
                             "channels, width=0.25 a ResNet's channel multiplier")
    parser.add_argument("--T", type=positive_int, default=defaults.T, help="timesteps (default: %(default)s)")
    parser.add_argument("--data", default=defaults.data, choices=DATASETS, help="dataset (default: %(default)s)")
    parser.add_argument("--data-root", help="folder holding the dataset files")
    parser.add_argument("--epochs", type=positive_int,
                        help=f"number of epochs (default: {defaults.epochs}); with --resume, a larger number extends a "
                             "finished run with a new cosine cycle")
    parser.add_argument("--batch-size", type=positive_int, default=defaults.batch_size,
                        help="images per optimizer step, over all processes under torchrun (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=defaults.lr,
                        help="peak learning rate, cosine-annealed to 0 (default: %(default)s)")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default=defaults.optimizer,
                        help="default: %(default)s")
    parser.add_argument("--momentum", type=float, default=defaults.momentum, help="SGD momentum (default: %(default)s)")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="default: %(default)s")
    parser.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing,
                        help="default: %(default)s")
    parser.add_argument("--limit", type=positive_int, help="train on the first N training images only")
    parser.add_argument("--test-limit", type=positive_int, help="evaluate on the first N test images only")
    parser.add_argument("--track", type=non_negative_int, default=0, metavar="K",
                        help="analyse the first K test images before training and after every epoch (firing rate, "
                             "orientation, similarity per layer) into the checkpoint and tracks.csv")
    parser.add_argument("--device", default=defaults.device, help=DEVICE_HELP)


def register(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], None]]:
    defaults = TrainConfig()
    t = commands.add_parser("train", help="train a spiking network (optionally with FSTA)", epilog=TRAIN_EXAMPLES,
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            description="Train with BPTT through the surrogate gradient; a checkpoint and "
                                        "history.csv are written atomically to OUT/ after every epoch.")
    _recipe_flags(t, defaults)
    t.add_argument("--fsta", nargs="?", const="both", default=False, choices=("both", "temporal", "spatial"),
                   help="insert FSTA in front of every spiking layer; 'temporal' or 'spatial' keeps one branch")
    t.add_argument("--seed", type=int, default=defaults.seed, help="default: %(default)s")
    t.add_argument("--out", default=defaults.out, help="output folder (default: %(default)s)")
    t.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue the run saved in CHECKPOINT with its own settings (only --device and --epochs "
                        "apply)")
    a = commands.add_parser("train-arms", help="train baseline and FSTA arms with one recipe over several seeds",
                            epilog=ARMS_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
                            description="Paired training: every arm gets the same recipe, seeds, initial weights of "
                                        "the shared layers and data order; then the arms are compared.")
    _recipe_flags(a, defaults)
    a.add_argument("--arms", default="baseline,fsta",
                   help=f"comma-separated, from {', '.join(ARMS)} (default: %(default)s)")
    a.add_argument("--seeds", type=positive_int, default=3, help="seeds 0..N-1 per arm (default: %(default)s)")
    a.add_argument("--out", default="runs/arms", help="folder of the runs (default: %(default)s)")
    a.add_argument("--compare-limit", type=positive_int, default=2000,
                   help="test images the comparison analyses (default: %(default)s)")
    return {"train": run_train, "train-arms": run_arms}


def _config(args: argparse.Namespace, **fields) -> TrainConfig:
    return TrainConfig(arch=args.arch, arch_kwargs=dict(args.arch_kw), T=args.T, data=args.data,
                       data_root=args.data_root, epochs=TrainConfig().epochs if args.epochs is None else args.epochs,
                       batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, momentum=args.momentum,
                       weight_decay=args.weight_decay, label_smoothing=args.label_smoothing, limit=args.limit,
                       test_limit=args.test_limit, device=args.device, track=args.track, **fields)


def run_train(args: argparse.Namespace) -> None:
    if args.resume:
        defaults = {**dataclasses.asdict(TrainConfig()), "arch_kw": []}
        ignored = [flag for name, flag in SETTINGS.items() if getattr(args, name) != defaults[name]]
        if ignored:
            warnings.warn(f"--resume continues the run with its own settings; ignored: {', '.join(ignored)}",
                          SpikescopeWarning)
    config = _config(args, fsta=args.fsta, seed=args.seed, out=args.out)
    path = train(config, resume_from=args.resume, epochs=args.epochs if args.resume else None)
    if distributed.is_main():
        print(f"checkpoint: {path}")


def run_arms(args: argparse.Namespace) -> None:
    """Train the arms, then compare them on the recipe's data; every flag and the comparison folder are
    checked before the first epoch."""
    arms = [arm for arm in args.arms.split(",") if arm]
    check_arms(arms, range(args.seeds))
    if len(arms) * args.seeds < 2:
        raise SpikescopeError(f"--arms {args.arms} --seeds {args.seeds} trains one model: nothing to compare; add an "
                              "arm (e.g. --arms baseline,fsta) or seeds (--seeds 3)")
    comparison = check_output_folder(Path(args.out) / "comparison", "compare")
    config = _config(args).validate()
    paths = train_arms(config, arms, seeds=range(args.seeds), out=args.out)
    _, files = compare(groups=paths, data=config.data, data_root=config.data_root, limit=args.compare_limit,
                       device=args.device, out=comparison, command=command_line(), progress=True)
    for arm, checkpoints in paths.items():
        print(f"{arm}: {len(checkpoints)} run{'' if len(checkpoints) == 1 else 's'} in {checkpoints[0].parent.parent}")
    print(f"comparison: {files['comparison.html']}")
