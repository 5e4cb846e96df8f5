"""`hone failures`: export the failed items with prompt, reference, output, judge and reason."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def failures(
        verdicts: Path = typer.Option(..., help="Verdict JSONL from `hone judge`."),
        out: Path = typer.Option(..., "-o", "--out", help="Failures file: JSONL, or CSV if it ends in .csv."),
        tasks: Path = typer.Option(None, help="Task JSONL (default: from the verdicts' manifest)."),
        generations: Path = typer.Option(None, help="Generation JSONL (default: from the verdicts' manifest)."),
        include_errors: bool = typer.Option(False, help="Also export items the judge could not decide."),
    ) -> None:
        """Write every failed (or lost) item with id, category, prompt, reference, model output, judge, reason."""
        from hone.judge.failures import run_failures

        n = run_failures(verdicts, out, tasks, generations, include_errors=include_errors)
        typer.echo(f"wrote {n} failures to {out}")
