"""`hone tasks import`: public formats, in the files users have, to Task JSONL."""

from __future__ import annotations

from pathlib import Path

import typer

from hone.commands.options import OVERWRITE

FORMAT_HELP = ("gsm8k (question, answer with `#### N`) | math (problem, solution with \\boxed{}) | "
               "humaneval (task_id, prompt, entry_point, test) | mbpp (task_id, text, code, test_list) | "
               "mmlu (question, choices, answer index[, subject]; or prompt, response, metadata.answer_index) | "
               "jsonl (prompt or messages[, reference, options, tests, entry_point, id])")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Task files: import public benchmark formats.", no_args_is_help=True)

    @group.command("import")
    def import_(
        src: Path = typer.Argument(..., help="Input: JSONL, parquet, CSV/TSV, a JSON array (.json), or a "
                                             "`datasets.save_to_disk` folder."),
        fmt: str = typer.Option(..., "--format", "-f", help=FORMAT_HELP),
        out: Path = typer.Option(None, "-o", "--out", help="Output Task JSONL (not needed with --dry-run)."),
        field: list[str] = typer.Option(None, "--field", help="KEY=COLUMN: read KEY from the column COLUMN. Keys: "
                                        "question, answer (or reference), choices, tests, entry_point, id, "
                                        "or any field of the format (e.g. metadata.answer_index). Repeatable."),
        limit: int = typer.Option(None, help="Keep only the first N items."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the first mapped tasks; write nothing."),
        overwrite: bool = OVERWRITE,
    ) -> None:
        """Convert SRC (declared as --format) into Tasks with stable ids; refuse content of another format."""
        from collections import Counter

        from hone.errors import HoneError
        from hone.importers import import_tasks, import_to, parse_fields
        from hone.records import dumps

        fields = parse_fields(field, fmt)
        if dry_run:
            tasks = import_tasks(src, fmt, limit=limit, fields=fields)
            for task in tasks[:3]:
                typer.echo(dumps(task))
            typer.echo(f"{len(tasks)} tasks would be written (dry run; nothing written)")
            return
        if out is None:
            raise HoneError("--out is required (or pass --dry-run to preview)")
        tasks = import_to(src, fmt, out, limit=limit, fields=fields, overwrite=overwrite)
        kinds = Counter(t.kind for t in tasks)
        typer.echo(f"wrote {len(tasks)} tasks to {out} ({', '.join(f'{k}: {v}' for k, v in sorted(kinds.items()))})")

    app.add_typer(group, name="tasks")
