"""Command line: parses arguments and calls the library; user errors end in one line and exit code 2.

One module per command family registers its subcommands; `main` runs the chosen one. This module imports
nothing heavy at the top, so that Ctrl-C is caught (exit 130, one line) wherever it lands, even while torch
is being imported: until the command starts, Ctrl-C ends the process at once (nothing has been written yet,
and an interrupt raised inside the import machinery can be swallowed by it); from then on it raises
KeyboardInterrupt, so that cleanup code runs.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import warnings
from typing import Callable, Sequence

SEVERAL_PROCESSES = ("analyze", "evaluate", "frequency", "train")  # the commands that run under torchrun


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], None]]]:
    """The parser of every subcommand, and the function that runs each."""
    from .. import __version__
    from . import analyze, attribute, compare, frequency, train
    from .common import Parser

    parser = Parser(prog="spikescope", description="Look inside trained spiking neural networks.")
    parser.add_argument("--version", action="version", version=f"spikescope {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    runners: dict[str, Callable[[argparse.Namespace], None]] = {}
    for family in (train, analyze, attribute, frequency, compare):
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
        args, runners = _parse(argv)
        return _run(args, runners, argv)
    except KeyboardInterrupt:
        print("spikescope: interrupted", file=sys.stderr)
        return 130


def _interrupted_while_starting(number: int, frame: object) -> None:
    """Ctrl-C before the command started: say so and end (no file has been written yet)."""
    os.write(2, b"spikescope: interrupted\n")
    os._exit(130)


def _parse(argv: Sequence[str] | None) -> tuple[argparse.Namespace, dict[str, Callable[[argparse.Namespace], None]]]:
    """The parsed command line and the runners, with Ctrl-C ending the process while the modules import."""
    ours = threading.current_thread() is threading.main_thread() and signal.getsignal(
        signal.SIGINT) is signal.default_int_handler  # not where SIGINT is ignored or handled by a host program
    if ours:
        signal.signal(signal.SIGINT, _interrupted_while_starting)
    try:
        parser, runners = build_parser()  # imports torch and every command's modules: most of the start-up
        return parser.parse_args(argv), runners
    finally:
        if ours:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _run(args: argparse.Namespace, runners: dict[str, Callable[[argparse.Namespace], None]],
         argv: Sequence[str] | None) -> int:
    """Run the parsed command; user errors end in one line and their exit code."""
    from .. import distributed
    from ..errors import SpikescopeError
    from .common import command_line

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
