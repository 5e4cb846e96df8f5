"""The `hone` command line: one command per stage, thin over plain functions. Imports stay lazy."""

from __future__ import annotations

import sys

import typer

from hone.commands import (bench, critique, data, demo, docx, failures, generate, grade, judge, loop, merge, models,
                           tasks, train)

app = typer.Typer(
    name="hone",
    help="Make a local chat model better, round after round, with numbers you can trust.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for module in (tasks, generate, grade, bench, judge, failures, critique, data, train, merge, models, loop, demo, docx):
    module.register(app)


def main() -> None:
    import os

    from hone.errors import HoneError

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # Hone shows its own progress
    try:
        app()
    except HoneError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted: finished items are kept; run the same command again to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
