"""What the subcommands share: the one-line-error parser, KEY=VALUE arguments, data and device flags."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any, Sequence

from ..data import DATASETS
from ..errors import SpikescopeError
from ..timelayout import FOLD_ORDERS
from ..tokens import parse_grid

DEVICE_HELP = "cpu, or cuda / cuda:N where this machine has a GPU (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (usage stays available through --help)."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def arch_kwarg(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` with VALUE read as JSON where it is JSON (numbers, booleans), else as text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def positive_int(text: str) -> int:
    """An argparse type for counts (images, seeds, epochs, timesteps): a whole number of at least 1, so that a bad
    value is refused while parsing, in a message that names the flag as typed."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type for counts where 0 means none (train --track)."""
    return _whole_number(text, 0)


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def grid(text: str) -> tuple[int, int]:
    """An argparse type for --tokens: the patch grid `HxW`, refused while parsing if malformed."""
    try:
        return parse_grid(text)
    except SpikescopeError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_data_flags(parser: argparse.ArgumentParser, batch_size: int, what: str) -> None:
    """--data, --data-root, --limit, --batch-size and --device, as every analysing command takes them."""
    parser.add_argument("--data", choices=DATASETS, help="dataset (default: the checkpoint's; the bundled sample "
                                                          "for the demo model)")
    parser.add_argument("--data-root", help="folder holding the dataset files")
    parser.add_argument("--limit", type=positive_int, help=f"{what} the first N test images only")
    parser.add_argument("--batch-size", type=positive_int, default=batch_size, help="default: %(default)s")
    parser.add_argument("--device", default="cpu", help=DEVICE_HELP)


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as typed (`argv`, by default the command line's), for the record in reports and in messages."""
    return shlex.join(["spikescope", *(sys.argv[1:] if argv is None else argv)])


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """How to build and run a model that is not a spikescope checkpoint (--arch, --T, layouts, --trust-pickle)."""
    parser.add_argument("--arch", help="for a plain state dict: package.module:factory (or a spikescope model name)")
    parser.add_argument("--arch-kw", type=arch_kwarg, action="append", default=[], metavar="KEY=VALUE",
                        help="argument for the --arch factory (repeatable)")
    parser.add_argument("--T", type=positive_int, help="timesteps, for models whose file does not say")
    parser.add_argument("--time-first-input", action="store_true",
                        help="feed [T, B, C, H, W] (images repeated T times), for multi-step models such as "
                             "SpikingJelly networks in 'm' mode")
    parser.add_argument("--fold", choices=tuple(FOLD_ORDERS),
                        help="how the model folds time into the batch when a neuron no framework declares returns "
                             "[T*B, ...]: time-major (x.flatten(0, 1) of [T, B, ...]) or batch-major (of [B, T, ...])")
    parser.add_argument("--batch-first", action=argparse.BooleanOptionalAction,
                        help="whether neurons no framework declares return [B, T, ...] (asked for when an output could "
                             "also be one step of a loop over time outside the model)")
    parser.add_argument("--tokens", type=grid, metavar="HxW",
                        help="the patch grid of a transformer's token layers (e.g. 8x8 for 64 tokens): they get "
                             "spectra and maps on it; by default the model's last 2D map before its tokens")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow loading a whole pickled model; unpickling runs code from the file")


def warn_trust_pickle(args: argparse.Namespace, what: str) -> None:
    """With --trust-pickle, say on stderr before any model is loaded that unpickling runs code from `what` (the
    model file or files, as the command names them); without it, nothing."""
    if args.trust_pickle:
        print(f"spikescope: warning: --trust-pickle: unpickling runs code from {what}", file=sys.stderr)
