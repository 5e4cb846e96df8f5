"""The `hone` command line: one command per stage, thin over plain functions. Imports stay lazy."""

from __future__ import annotations

import sys

import typer

from hone.commands import (bench, compare, critique, data, demo, docx, failures, generate, grade, judge, loop, merge,
                           models, status, tasks, train)

app = typer.Typer(
    name="hone",
    help="Make a local chat model better, round after round, with numbers you can trust.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for module in (tasks, generate, grade, bench, compare, judge, failures, critique, data, train, merge, models, loop,
               status, demo, docx):
    module.register(app)


def _version(value: bool) -> None:
    if value:
        import importlib.metadata

        typer.echo(f"hone {importlib.metadata.version('hone')}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="Print Hone's version and exit.")) -> None:
    """Make a local chat model better, round after round, with numbers you can trust."""


def _interrupted() -> None:
    """What Ctrl-C leaves: the finished items kept in `.partial` files, and the command that resumes."""
    import shlex

    from hone.records import kept_partials

    kept = kept_partials()
    what = "; ".join(f"{n} finished items in {path}" for path, n in kept) if kept else "every finished stage"
    typer.echo(f"interrupted: kept {what}; resume with: {shlex.join(['hone', *sys.argv[1:]])}", err=True)


def _disk_errors() -> frozenset[int]:
    import errno

    return frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


_DISK_ERRORS = _disk_errors()


def main() -> None:
    import os

    from pydantic import ValidationError

    from hone.errors import HoneError, option, problem

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # Hone shows its own progress
    try:
        app()
    except HoneError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except ValidationError as e:  # a config a command built from its options: name the option, as a HoneError would
        loc, msg = problem(e)
        typer.echo(f"error: {option(loc)}: {msg}", err=True)
        sys.exit(2)
    except OSError as e:
        if e.errno not in _DISK_ERRORS:
            raise
        where = e.filename or "the output folder"
        if os.path.basename(str(where)).startswith("."):  # Hone's hidden temporary: name the folder instead
            where = os.path.dirname(str(where)) or "."
        typer.echo(f"error: {where}: {e.strerror}; free space or choose a writable folder, then run the same "
                   "command again", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        _interrupted()
        sys.exit(130)
    except SystemExit as e:
        if e.code == 130:  # Typer's answer to Ctrl-C inside a command; no Hone command exits 130 itself
            _interrupted()
        raise


if __name__ == "__main__":
    main()
