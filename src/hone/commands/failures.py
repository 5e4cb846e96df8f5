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
        cluster: int = typer.Option(None, "--cluster", metavar="K",
                                    help="Also group the failures into at most K clusters (TF-IDF + k-means over "
                                         "prompt, answer and judge reason) and write them as JSON."),
        clusters_out: Path = typer.Option(None, help="Where the clusters go (default: OUT with .clusters.json)."),
        seed: int = typer.Option(0, help="Seed of the clustering (same failures + seed = same clusters)."),
    ) -> None:
        """Write every failed (or lost) item with id, category, prompt, reference, model output, judge, reason."""
        from hone.judge.failures import run_failures

        n = run_failures(verdicts, out, tasks, generations, include_errors=include_errors)
        typer.echo(f"wrote {n} failures to {out}")
        if cluster is None:
            return
        from hone.judge.clusters import cluster_failures, read_failure_rows, write_clusters

        result = cluster_failures(read_failure_rows(out), cluster, seed=seed)
        path = write_clusters(result, clusters_out or out.with_name(out.stem + ".clusters.json"), source=out)
        typer.echo(f"{len(result['clusters'])} clusters of {result['items']} failures in {path}:")
        for c in result["clusters"]:
            typer.echo(f"  {c['cluster']}: {c['size']} items ({100 * c['share']:.0f}%) — "
                       f"{', '.join(c['top_terms']) or '(no distinctive term)'}; e.g. {c['examples'][0]['prompt']!r}")
