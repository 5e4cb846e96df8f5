"""`hone status`: where a loop or demo run stands, from its files alone (works while it runs and after a kill)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def status(
        run_dir: Path = typer.Argument(..., help="A `hone loop` or `hone demo` run directory."),
        as_json: bool = typer.Option(False, "--json", help="Print the status as JSON, for scripts."),
    ) -> None:
        """Each round's stages (done / running with counts / not started), the promoted model, held-out accuracy
        so far with 95% CIs, judge spend, and the command that resumes the run."""
        import json

        from hone.report.status import render_status, run_status

        st = run_status(run_dir)
        typer.echo(json.dumps(st, indent=2) if as_json else render_status(st))
