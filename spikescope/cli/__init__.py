"""Command line: parses arguments and calls the library; user errors end in one line and exit code 2.

One module per command family registers its subcommands; `main` runs the chosen one.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from typing import Callable, Sequence

from .. import __version__, distributed
from ..errors import SpikescopeError, SpikescopeNote, SpikescopeWarning
from . import analyze, attribute, compare, train
from .common import Parser

FAMILIES = (train, analyze, attribute, compare)
SEVERAL_PROCESSES = ("analyze", "evaluate", "train")  # the commands that run under torchrun


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], None]]]:
    """The parser of every subcommand, and the function that runs each."""
    parser = Parser(prog="spikescope", description="Look inside trained spiking neural networks.")
    parser.add_argument("--version", action="version", version=f"spikescope {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    runners: dict[str, Callable[[argparse.Namespace], None]] = {}
    for family in FAMILIES:
        runners.update(family.register(commands))
    return parser, runners


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """spikescope's warnings and notes as one line each (by rank 0 alone); other libraries' warnings as Python
    shows them."""
    if issubclass(category, SpikescopeWarning) and not distributed.is_main():
        return
    if issubclass(category, SpikescopeWarning):
        kind = "note" if issubclass(category, SpikescopeNote) else "warning"
        print(f"spikescope: {kind}: {' '.join(str(message).split())}", file=file or sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser, runners = build_parser()
    args = parser.parse_args(argv)
    shown, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        if distributed.requested_processes() > 1 and args.command not in SEVERAL_PROCESSES:
            raise SpikescopeError(f"spikescope {args.command} runs in one process; start it without torchrun")
        runners[args.command](args)
    except SpikescopeError as error:
        print(f"spikescope: error{distributed.describe_process()}: {' '.join(str(error).split())}",
              file=sys.stderr)  # always one line
        return error.exit_code
    except KeyboardInterrupt:
        print("spikescope: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown
    return 0
