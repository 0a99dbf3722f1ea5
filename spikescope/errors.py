"""The one exception type users see: a short sentence, exit code 2, no traceback."""


class SpikescopeError(Exception):
    """Bad input from the user (a missing file, a wrong name, a corrupt checkpoint).

    The CLI prints the message on one line and exits with code 2; anything else that
    escapes is a bug and keeps its traceback.
    """

    exit_code = 2


def describe(error: BaseException) -> str:
    """`Type: first line of the message`, for wrapping a library's exception into one line."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
