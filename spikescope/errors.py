"""What users see when something is off: one error type (exit code 2) and one warning type."""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Iterator


class SpikescopeError(Exception):
    """Bad input from the user (a missing file, a wrong name, a corrupt checkpoint).

    The CLI prints the message on one line and exits with code 2; anything else that
    escapes is a bug and keeps its traceback.
    """

    exit_code = 2


class SpikescopeWarning(UserWarning):
    """Something the user should know that does not stop the run (the CLI prints it on one line)."""


class SpikescopeNote(SpikescopeWarning):
    """A harmless fact about the run worth a line (the CLI prints it as a note)."""


def warn(message: str, category: type[SpikescopeWarning] = SpikescopeWarning) -> str:
    """Issue `message` as a `SpikescopeWarning`, attributed to spikescope rather than to a line of its code (a
    user's log shows the message, not a line of spikescope's source); returns it for the record."""
    warnings.warn_explicit(message, category, "spikescope", 0, module="spikescope")
    return message


def note(message: str) -> str:
    """Issue `message` as a `SpikescopeNote`; returns it."""
    return warn(message, SpikescopeNote)


def describe(error: BaseException) -> str:
    """`Type: first line of the message`, for wrapping a library's exception into one line."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


@contextmanager
def recorded_warnings(show: bool = True, prefix: str = "") -> Iterator[list[str]]:
    """Collect the text of every spikescope warning and note issued inside the block, each shown as it comes (with
    `prefix` before it, e.g. the model it concerns) or, with `show=False`, only kept."""
    messages: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("default", SpikescopeWarning)  # also clears earlier once-only registries
        shown = warnings.showwarning

        def show_and_keep(message, category, *args, **kwargs):
            if not issubclass(category, SpikescopeWarning):
                shown(message, category, *args, **kwargs)
                return
            if str(message) not in messages:
                messages.append(str(message))
            if show:
                shown(category(prefix + str(message)), category, *args, **kwargs)

        warnings.showwarning = show_and_keep
        yield messages
