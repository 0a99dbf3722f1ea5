"""Command line: parses arguments and calls the library; user errors end in one line and exit code 2.

One module per command family registers its subcommands; `main` runs the chosen one. This module imports
nothing heavy at the top, so that Ctrl-C is caught (exit 130, one line) wherever it lands, even while torch
is being imported.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from typing import Callable, Sequence

SEVERAL_PROCESSES = ("analyze", "evaluate", "train")  # the commands that run under torchrun


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], None]]]:
    """The parser of every subcommand, and the function that runs each."""
    from .. import __version__
    from . import analyze, attribute, compare, train
    from .common import Parser

    parser = Parser(prog="spikescope", description="Look inside trained spiking neural networks.")
    parser.add_argument("--version", action="version", version=f"spikescope {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    runners: dict[str, Callable[[argparse.Namespace], None]] = {}
    for family in (train, analyze, attribute, compare):
        runners.update(family.register(commands))
    return parser, runners


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """spikescope's warnings and notes as one line each (by rank 0 alone); other libraries' warnings as Python
    shows them."""
    from .. import distributed
    from ..errors import SpikescopeNote, SpikescopeWarning

    if issubclass(category, SpikescopeWarning) and not distributed.is_main():
        return
    if issubclass(category, SpikescopeWarning):
        kind = "note" if issubclass(category, SpikescopeNote) else "warning"
        print(f"spikescope: {kind}: {' '.join(str(message).split())}", file=file or sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in `argv` (default: the command line); returns the exit status."""
    try:
        return _run(argv)
    except KeyboardInterrupt:
        print("spikescope: interrupted", file=sys.stderr)
        return 130


def _run(argv: Sequence[str] | None) -> int:
    from .. import distributed
    from ..errors import SpikescopeError
    from .common import command_line

    parser, runners = build_parser()
    args = parser.parse_args(argv)
    shown, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        if distributed.requested_processes() > 1 and args.command not in SEVERAL_PROCESSES:
            if not distributed.is_main():
                return 2  # rank 0 says why
            raise SpikescopeError(f"spikescope {args.command} runs in one process, not under torchrun: run the same "
                                  f"command without torchrun ({command_line(argv)})")
        runners[args.command](args)
    except SpikescopeError as error:
        print(f"spikescope: error{distributed.describe_process()}: {' '.join(str(error).split())}",
              file=sys.stderr)  # always one line
        return error.exit_code
    finally:
        warnings.showwarning = shown
    return 0
