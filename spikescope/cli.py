"""Command line: parses arguments and calls the library; user errors end in one line and exit code 2."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from . import __version__
from .data import DATASETS
from .errors import SpikescopeError
from .models import available
from .train import FIRING_RATE_DEFINITION, TrainConfig, evaluate_checkpoint, train


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (usage stays available through --help)."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _arch_kwarg(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


TRAIN_EXAMPLES = """examples:
  spikescope train --data fashion-mnist --epochs 3 --out runs/baseline
  spikescope train --data fashion-mnist --epochs 3 --fsta --out runs/fsta
  spikescope train --data fashion-mnist-sample --limit 500 --arch-kw width=8 --out runs/smoke
  spikescope train --resume runs/baseline/checkpoint.pt
"""

EVALUATE_EXAMPLES = """examples:
  spikescope evaluate runs/baseline/checkpoint.pt
  spikescope evaluate runs/baseline/checkpoint.pt --data fashion-mnist-sample --limit 500
"""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="spikescope", description="Look inside trained spiking neural networks.")
    parser.add_argument("--version", action="version", version=f"spikescope {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = commands.add_parser("train", help="train a spiking network (optionally with FSTA)", epilog=TRAIN_EXAMPLES,
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            description="Train with BPTT through the surrogate gradient; a checkpoint is written "
                                        "atomically to OUT/checkpoint.pt after every epoch.")
    defaults = TrainConfig()
    t.add_argument("--arch", default=defaults.arch, choices=available(), help="architecture (default: %(default)s)")
    t.add_argument("--arch-kw", type=_arch_kwarg, action="append", default=[], metavar="KEY=VALUE",
                   help="extra architecture argument, e.g. width=8 (repeatable)")
    t.add_argument("--T", type=int, default=defaults.T, help="timesteps (default: %(default)s)")
    t.add_argument("--fsta", action="store_true", help="insert FSTA in front of every spiking layer")
    t.add_argument("--data", default=defaults.data, choices=DATASETS, help="dataset (default: %(default)s)")
    t.add_argument("--data-root", help="folder holding the dataset files")
    t.add_argument("--epochs", type=int, default=defaults.epochs, help="default: %(default)s")
    t.add_argument("--batch-size", type=int, default=defaults.batch_size, help="default: %(default)s")
    t.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate, cosine-annealed to 0 "
                                                                  "(default: %(default)s)")
    t.add_argument("--optimizer", choices=("adam", "sgd"), default=defaults.optimizer, help="default: %(default)s")
    t.add_argument("--momentum", type=float, default=defaults.momentum, help="SGD momentum (default: %(default)s)")
    t.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="default: %(default)s")
    t.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing, help="default: %(default)s")
    t.add_argument("--limit", type=int, help="train on the first N training images only")
    t.add_argument("--test-limit", type=int, help="evaluate on the first N test images only")
    t.add_argument("--seed", type=int, default=defaults.seed, help="default: %(default)s")
    t.add_argument("--device", default=defaults.device, help="cpu or cuda (default: %(default)s)")
    t.add_argument("--out", default=defaults.out, help="output folder (default: %(default)s)")
    t.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue the run saved in CHECKPOINT with its own settings (only --device applies)")

    e = commands.add_parser("evaluate", help="accuracy and firing rate of a checkpoint on a test set",
                            epilog=EVALUATE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("checkpoint", help="a spikescope checkpoint (.pt)")
    e.add_argument("--data", choices=DATASETS, help="dataset (default: the one the model was trained on)")
    e.add_argument("--data-root", help="folder holding the dataset files")
    e.add_argument("--limit", type=int, help="evaluate on the first N test images only")
    e.add_argument("--batch-size", type=int, default=256, help="default: %(default)s")
    e.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    return parser


def _run_train(args: argparse.Namespace) -> None:
    config = TrainConfig(arch=args.arch, arch_kwargs=dict(args.arch_kw), T=args.T, fsta=args.fsta, data=args.data,
                         data_root=args.data_root, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         optimizer=args.optimizer, momentum=args.momentum, weight_decay=args.weight_decay,
                         label_smoothing=args.label_smoothing, limit=args.limit, test_limit=args.test_limit,
                         seed=args.seed, device=args.device, out=args.out)
    path = train(config, resume_from=args.resume)
    print(f"checkpoint: {path}")


def _run_evaluate(args: argparse.Namespace) -> None:
    result = evaluate_checkpoint(args.checkpoint, args.data, args.data_root, args.limit, args.batch_size,
                                 args.device, progress=True)
    print(f"samples {result['samples']}: accuracy {result['accuracy']:.2%}, loss {result['loss']:.4f}, "
          f"firing rate {result['firing_rate']:.4f} ({FIRING_RATE_DEFINITION})")


COMMANDS = {"train": _run_train, "evaluate": _run_evaluate}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except SpikescopeError as error:
        print(f"spikescope: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("spikescope: interrupted", file=sys.stderr)
        return 130
    return 0
