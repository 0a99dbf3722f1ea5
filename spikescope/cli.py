"""Command line: parses arguments and calls the library; user errors end in one line and exit code 2."""
from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .data import DATASETS
from .errors import SpikescopeError, SpikescopeNote, SpikescopeWarning
from .metrics.energy import ENERGY_PRESETS_PJ
from .models import available
from .pipeline import analyze_checkpoint, evaluate_checkpoint
from .report.folder import default_report_folder
from .summary import summary_table
from .timelayout import FOLD_ORDERS
from .train import FIRING_RATE_DEFINITION, TrainConfig, train


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

ANALYZE_EXAMPLES = """examples:
  spikescope analyze                                   # the bundled demo model on the bundled sample
  spikescope analyze runs/baseline/checkpoint.pt --layers all --limit 1000
  spikescope analyze runs/fsta/checkpoint.pt --layers "block[1-3].lif" --energy int8 --png
  spikescope analyze weights.pt --arch mypackage.models:my_snn --T 4 --data cifar10 --data-root ~/data
  spikescope analyze whole_model.pt --trust-pickle --data gratings

outputs (in --out): report.html (+ plotly.min.js), layers.csv, timesteps.csv, energy.csv,
spectra.npz, similarity.npz, summary.json, and with --png figures/*.png
"""

EVALUATE_EXAMPLES = """examples:
  spikescope evaluate                                  # the bundled demo model on the bundled sample
  spikescope evaluate runs/baseline/checkpoint.pt
  spikescope evaluate runs/baseline/checkpoint.pt --data fashion-mnist-sample --limit 500
"""
DEVICE_HELP = "cpu, or cuda / cuda:N where this machine has a GPU (default: %(default)s)"


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
    t.add_argument("--epochs", type=int, help=f"number of epochs (default: {defaults.epochs}); with --resume, a "
                                               "larger number extends a finished run with a new cosine cycle")
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
    t.add_argument("--device", default=defaults.device, help=DEVICE_HELP)
    t.add_argument("--out", default=defaults.out, help="output folder (default: %(default)s)")
    t.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue the run saved in CHECKPOINT with its own settings (only --device and --epochs "
                        "apply)")

    a = commands.add_parser("analyze", help="record every spiking layer and write the HTML report",
                            epilog=ANALYZE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
                            description="Run a trained SNN over a test set, record every spiking layer at every "
                                        "timestep (firing rates, 2D-DCT spectra, cross-timestep similarity, "
                                        "synaptic operations and energy) and write a report folder.")
    a.add_argument("checkpoint", nargs="?", help="model file (default: the bundled baseline demo model)")
    a.add_argument("--layers", default="all",
                   help="all, NAME,NAME,... or a regular expression; text of only letters, digits, _ and . is "
                        "one module name (default: all)")
    a.add_argument("--data", choices=DATASETS, help="dataset (default: the checkpoint's; the bundled sample "
                                                     "for the demo model)")
    a.add_argument("--data-root", help="folder holding the dataset files")
    a.add_argument("--limit", type=int, help="analyze the first N test images only")
    a.add_argument("--batch-size", type=int, default=100, help="default: %(default)s")
    a.add_argument("--device", default="cpu", help=DEVICE_HELP)
    a.add_argument("--energy", choices=tuple(ENERGY_PRESETS_PJ), default="fp32",
                   help="energy per operation preset (default: %(default)s)")
    a.add_argument("--out", help="output folder, written whole or not at all; an existing one is replaced only if it "
                                 "is a spikescope report (default: reports/<checkpoint name>, or the run folder's "
                                 "name for a generic file name such as checkpoint.pt)")
    a.add_argument("--png", action="store_true", help="also write static figures for papers (matplotlib)")
    a.add_argument("--arch", help="for a plain state dict: package.module:factory (or a spikescope model name)")
    a.add_argument("--arch-kw", type=_arch_kwarg, action="append", default=[], metavar="KEY=VALUE",
                   help="argument for the --arch factory (repeatable)")
    a.add_argument("--T", type=int, help="timesteps, for models whose file does not say")
    a.add_argument("--time-first-input", action="store_true",
                   help="feed [T, B, C, H, W] (images repeated T times), for multi-step models such as "
                        "SpikingJelly networks in 'm' mode")
    a.add_argument("--fold", choices=tuple(FOLD_ORDERS),
                   help="how the model folds time into the batch when a neuron no framework declares returns "
                        "[T*B, ...]: time-major (x.flatten(0, 1) of [T, B, ...]) or batch-major (of [B, T, ...])")
    a.add_argument("--batch-first", action=argparse.BooleanOptionalAction,
                   help="whether neurons no framework declares return [B, T, ...] (asked for when an output could "
                        "also be one step of a loop over time outside the model)")
    a.add_argument("--trust-pickle", action="store_true",
                   help="allow loading a whole pickled model; unpickling runs code from the file")

    e = commands.add_parser("evaluate", help="accuracy and firing rate of a checkpoint on a test set",
                            epilog=EVALUATE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("checkpoint", nargs="?", help="a spikescope checkpoint (default: the bundled baseline demo model)")
    e.add_argument("--data", choices=DATASETS, help="dataset (default: the checkpoint's; the bundled sample for the "
                                                     "demo model), as for analyze")
    e.add_argument("--data-root", help="folder holding the dataset files")
    e.add_argument("--limit", type=int, help="evaluate on the first N test images only")
    e.add_argument("--batch-size", type=int, default=256, help="default: %(default)s")
    e.add_argument("--device", default="cpu", help=DEVICE_HELP)
    return parser


TRAIN_SETTINGS = {"arch": "--arch", "arch_kw": "--arch-kw", "T": "--T", "fsta": "--fsta", "data": "--data",
                  "data_root": "--data-root", "batch_size": "--batch-size", "lr": "--lr", "optimizer": "--optimizer",
                  "momentum": "--momentum", "weight_decay": "--weight-decay", "label_smoothing": "--label-smoothing",
                  "limit": "--limit", "test_limit": "--test-limit", "seed": "--seed", "out": "--out"}


def _run_train(args: argparse.Namespace) -> None:
    config = TrainConfig(arch=args.arch, arch_kwargs=dict(args.arch_kw), T=args.T, fsta=args.fsta, data=args.data,
                         data_root=args.data_root, epochs=TrainConfig().epochs if args.epochs is None else args.epochs,
                         batch_size=args.batch_size, lr=args.lr,
                         optimizer=args.optimizer, momentum=args.momentum, weight_decay=args.weight_decay,
                         label_smoothing=args.label_smoothing, limit=args.limit, test_limit=args.test_limit,
                         seed=args.seed, device=args.device, out=args.out)
    if args.resume:
        defaults = build_parser().parse_args(["train"])
        ignored = [flag for name, flag in TRAIN_SETTINGS.items() if getattr(args, name) != getattr(defaults, name)]
        if ignored:
            warnings.warn(f"--resume continues the run with its own settings; ignored: {', '.join(ignored)}",
                          SpikescopeWarning)
    path = train(config, resume_from=args.resume, epochs=args.epochs if args.resume else None)
    print(f"checkpoint: {path}")


def _run_evaluate(args: argparse.Namespace) -> None:
    result = evaluate_checkpoint(args.checkpoint, args.data, args.data_root, args.limit, args.batch_size,
                                 args.device, progress=True)
    print(f"samples {result['samples']}: accuracy {result['accuracy']:.2%}, loss {result['loss']:.4f}, "
          f"firing rate {result['firing_rate']:.4f} ({FIRING_RATE_DEFINITION})")


def _layers_argument(text: str) -> str | list[str]:
    """'all' and regular expressions stay strings; 'a,b' is a list of names."""
    if "," not in text:
        return text
    names = [name for name in text.split(",") if name]
    if not names:
        raise SpikescopeError(f"--layers {text!r} names no layer")
    return names


def _run_analyze(args: argparse.Namespace) -> None:
    if args.trust_pickle:
        print(f"spikescope: warning: --trust-pickle: unpickling {args.checkpoint} runs code from that file",
              file=sys.stderr)
    layers = _layers_argument(args.layers)
    if isinstance(layers, str) and layers != "all" and re.fullmatch(r"[\w.]+", layers):
        layers = [layers]  # a plain module name
    out = args.out
    if out is None and args.checkpoint is not None:
        out = default_report_folder(Path(args.checkpoint))
        print(f"spikescope: report folder: {out}", file=sys.stderr)
    result, files = analyze_checkpoint(
        args.checkpoint, layers=layers, data=args.data, data_root=args.data_root, limit=args.limit,
        batch_size=args.batch_size, device=args.device, energy=args.energy, out=out, png=args.png,
        arch=args.arch, arch_kwargs=dict(args.arch_kw), T=args.T, trust_pickle=args.trust_pickle,
        time_first_input=args.time_first_input, fold=args.fold, batch_first=args.batch_first,
        command=shlex.join(["spikescope", *sys.argv[1:]]), progress=True)
    print(summary_table(result))
    print(f"report: {files['report.html']}")


COMMANDS = {"train": _run_train, "evaluate": _run_evaluate, "analyze": _run_analyze}


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """spikescope's warnings and notes as one line each; other libraries' warnings as Python shows them."""
    if issubclass(category, SpikescopeWarning):
        kind = "note" if issubclass(category, SpikescopeNote) else "warning"
        print(f"spikescope: {kind}: {' '.join(str(message).split())}", file=file or sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    shown, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        COMMANDS[args.command](args)
    except SpikescopeError as error:
        print(f"spikescope: error: {' '.join(str(error).split())}", file=sys.stderr)  # always one line
        return error.exit_code
    except KeyboardInterrupt:
        print("spikescope: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown
    return 0
