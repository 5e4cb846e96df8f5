"""`hone loop` and `hone report`."""

from __future__ import annotations

from pathlib import Path

import typer

from hone.commands.options import RESTART


def register(app: typer.Typer) -> None:
    @app.command()
    def loop(
        config: Path = typer.Option(..., "--config", "-c", help="Loop YAML (see examples/)."),
        out: Path = typer.Option(..., "-o", "--out", help="Run directory; re-run the same command to resume."),
        threads: int = typer.Option(None, help="torch CPU threads (default: torch's own choice)."),
        restart: bool = RESTART,
    ) -> None:
        """Rounds of generate -> judge -> improve -> data -> train -> merge+verify -> bench -> gate."""
        if threads:
            import torch

            torch.set_num_threads(threads)
        from hone.config import load_config
        from hone.loop import run_loop
        from hone.loop_config import LoopConfig
        from hone.report.status import record_command

        cfg = load_config(config, LoopConfig).resolve(config.resolve().parent)
        record_command(out)
        summary = run_loop(cfg, out, say=typer.echo, restart=restart)
        typer.echo(f"final model: {summary.final_model}; wrote {out / 'summary.json'}, {out / 'report.md'} "
                   f"and {out / 'report.html'}")

    @app.command()
    def report(
        run_dir: Path = typer.Argument(..., help="A loop or demo run directory."),
        html: bool = typer.Option(False, "--html", help="Also write report.html: one self-contained page, plots "
                                                        "inline, nothing fetched from the network."),
    ) -> None:
        """Rebuild report.md, its plots and the failure clusters (and report.html) from the run's files."""
        from hone.report.build import write_reports

        paths = write_reports(run_dir, html=html)
        typer.echo("wrote " + " and ".join(str(p) for p in paths.values()))
