"""`hone failures`: export the failed items with prompt, reference, output, judge and reason."""

from __future__ import annotations

from pathlib import Path

import typer

from hone.commands.options import OVERWRITE, RESTART


def register(app: typer.Typer) -> None:
    @app.command()
    def failures(
        verdicts: Path = typer.Option(..., help="Verdict JSONL from `hone judge`."),
        out: Path = typer.Option(..., "-o", "--out", help="Failures file: JSONL, or CSV if it ends in .csv."),
        tasks: Path = typer.Option(None, help="Task JSONL (default: from the verdicts' manifest)."),
        generations: Path = typer.Option(None, help="Generation JSONL (default: from the verdicts' manifest)."),
        include_errors: bool = typer.Option(False, help="Also export items the judge could not decide."),
        cluster: int = typer.Option(None, "--cluster", metavar="K",
                                    help="Also group the failures into at most K clusters (TF-IDF + k-means over "
                                         "prompt, answer and judge reason) and write them as JSON."),
        clusters_out: Path = typer.Option(None, help="Where the clusters go (default: OUT with .clusters.json)."),
        seed: int = typer.Option(0, help="Seed of the clustering (same failures + seed = same clusters)."),
        restart: bool = RESTART,
        overwrite: bool = OVERWRITE,
    ) -> None:
        """Write every failed (or lost) item with id, category, prompt, reference, model output, judge, reason."""
        from hone.judge.failures import FailuresConfig, run_failures
        from hone.progress import stage_bar

        config = FailuresConfig(include_errors=include_errors, clusters=cluster, seed=seed, restart=restart,
                                overwrite=overwrite)
        with stage_bar("failures") as bar:
            result = run_failures(config, verdicts, out, tasks_path=tasks, generations_path=generations,
                                  clusters_out=clusters_out, progress=bar)
        if result.skipped:
            typer.echo(f"{out}: already complete for these inputs and settings (skipped)")
        typer.echo(f"wrote {result.counts['failures']} failures to {out}")
        if result.clusters is None:
            return
        clusters = result.clusters
        typer.echo(f"{len(clusters['clusters'])} clusters of {clusters['items']} failures in "
                   f"{result.outputs['clusters']}:")
        for c in clusters["clusters"]:
            typer.echo(f"  {c['cluster']}: {c['size']} items ({100 * c['share']:.0f}%) — "
                       f"{', '.join(c['top_terms']) or '(no distinctive term)'}; e.g. {c['examples'][0]['prompt']!r}")
