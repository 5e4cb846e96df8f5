"""`hone tasks import`: public formats to Task JSONL."""

from __future__ import annotations

from pathlib import Path

import typer

from hone.commands.options import OVERWRITE


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Task files: import public benchmark formats.", no_args_is_help=True)

    @group.command("import")
    def import_(
        src: Path = typer.Argument(..., help="Input JSONL file."),
        fmt: str = typer.Option(..., "--format", "-f", help="gsm8k | math | humaneval | mbpp | jsonl"),
        out: Path = typer.Option(..., "-o", "--out", help="Output Task JSONL."),
        limit: int = typer.Option(None, help="Keep only the first N items."),
        overwrite: bool = OVERWRITE,
    ) -> None:
        """Convert SRC (declared as --format) into Tasks with stable ids; refuse content of another format."""
        from collections import Counter

        from hone.importers import import_to

        tasks = import_to(src, fmt, out, limit=limit, overwrite=overwrite)
        kinds = Counter(t.kind for t in tasks)
        typer.echo(f"wrote {len(tasks)} tasks to {out} ({', '.join(f'{k}: {v}' for k, v in sorted(kinds.items()))})")

    app.add_typer(group, name="tasks")
