"""Every report of a run, from its directory: failure clusters, report.md with PNGs, report.html.

A `hone loop` directory holds one summary.json; a `hone demo` directory holds one per arm and a top-level
summary.json that names them. Both end their run here, and `hone report` rebuilds the same files later.
"""

from __future__ import annotations

import os
from pathlib import Path

from hone.round import LoopSummary, RoundLayout, read_run

CLUSTERS_K = 6


def final_failures(arm_dir: Path, summary: LoopSummary) -> Path:
    """The held-out failures of the model the arm ends with (the last promoted round's benchmark)."""
    return RoundLayout(arm_dir, summary.last_promoted().round).bench_failures


def write_clusters_for(arm_dir: Path, summary: LoopSummary, k: int = CLUSTERS_K) -> Path | None:
    """Cluster the final model's held-out failures into `failure_clusters.json` (None: no benchmark file)."""
    from hone.judge.clusters import CLUSTERS_FILE, cluster_failures, read_failure_rows, write_clusters

    source = final_failures(arm_dir, summary)
    if not source.exists():
        return None
    rows = read_failure_rows(source)
    return write_clusters(cluster_failures(rows, k, seed=int(summary.config.get("seed", 0))),
                          arm_dir / CLUSTERS_FILE, source=source.relative_to(arm_dir))


def write_reports(run_dir: str | os.PathLike, html: bool = True) -> dict[str, Path]:
    """Clusters per arm, report.md (+ PNGs) and, unless `html` is False, report.html; returns the paths."""
    from hone.report.html import render_html
    from hone.report.markdown import render_report

    run_dir = Path(run_dir)
    arms, dirs, demo = read_run(run_dir)
    for arm, summary in arms.items():
        write_clusters_for(dirs[arm], summary)
    title = demo.title if demo else "Hone run report"
    out = {"markdown": render_report(arms, run_dir, title=title,
                                     compared=demo.verified_vs_control if demo else None)}
    if html:
        out["html"] = render_html(arms, dirs, run_dir / "report.html", title, demo)
    return out


