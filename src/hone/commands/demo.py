"""`hone demo`: the whole loop offline on CPU, on a tiny model built on the spot, with a control arm."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        out: Path = typer.Option(Path("demo-run"), "-o", "--out", help="Run directory (resumable)."),
        seed: int = typer.Option(0, help="Seed of the data, the model and every sample."),
        size: str = typer.Option("full", help="full (the real demo, ~9 min on 2 cores) | small (CI plumbing)."),
        threads: int = typer.Option(1, help="torch threads (a tiny model runs fastest on one)."),
    ) -> None:
        """Build a tiny Llama, give it a supervised start, then run the verified loop and an unverified control."""
        from hone.demo import SIZES, run_demo
        from hone.errors import HoneError

        if size not in SIZES:
            raise HoneError(f"unknown demo size {size!r} (use one of: {', '.join(SIZES)})")
        from hone.report.status import record_command

        record_command(out)
        summary = run_demo(out, seed=seed, size_name=size, say=typer.echo, threads=threads)
        typer.echo(f"wrote {out / 'summary.json'} and {out / 'report.md'}")
        typer.echo(f"report: {(out / 'report.html').resolve()} (open it in a browser)")
        if not summary["arms"]:
            raise typer.Exit(1)
