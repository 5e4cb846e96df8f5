"""The one error type a user sees: a single line naming what is wrong and where."""


class HoneError(Exception):
    """A user-facing error. The CLI prints `error: <message>` and exits non-zero, with no traceback."""
