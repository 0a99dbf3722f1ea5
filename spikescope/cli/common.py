"""What the subcommands share: the one-line-error parser, KEY=VALUE arguments, data and device flags."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from ..data import DATASETS

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


def add_data_flags(parser: argparse.ArgumentParser, batch_size: int, what: str) -> None:
    """--data, --data-root, --limit, --batch-size and --device, as every analysing command takes them."""
    parser.add_argument("--data", choices=DATASETS, help="dataset (default: the checkpoint's; the bundled sample "
                                                          "for the demo model)")
    parser.add_argument("--data-root", help="folder holding the dataset files")
    parser.add_argument("--limit", type=int, help=f"{what} the first N test images only")
    parser.add_argument("--batch-size", type=int, default=batch_size, help="default: %(default)s")
    parser.add_argument("--device", default="cpu", help=DEVICE_HELP)


def command_line() -> str:
    """The command as typed, for the record in reports."""
    return shlex.join(["spikescope", *sys.argv[1:]])
