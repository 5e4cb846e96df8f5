"""The one error type a user sees: a single line naming what is wrong and where."""


class HoneError(Exception):
    """A user-facing error. The CLI prints `error: <message>` and exits non-zero, with no traceback."""


def problem(err: Exception) -> tuple[tuple, str]:
    """The first error of a pydantic ValidationError as (its location, its message with how many more there are):
    what every one-line error about a config, a record or a reply is made of."""
    first = err.errors()[0]  # type: ignore[attr-defined]
    loc = tuple(p for p in first.get("loc", ()) if p != "__root__")
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""  # type: ignore[attr-defined]
    return loc, f"{first.get('msg', 'invalid')}{more}"


def dotted(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def option(loc: tuple) -> str:
    """The command-line option a setting comes from: `max_new_tokens` -> `--max-new-tokens`, `n` -> `-n`."""
    name = str(loc[-1]) if loc else "settings"
    return f"-{name}" if len(name) == 1 else f"--{name.replace('_', '-')}"
