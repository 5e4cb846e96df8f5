"""Every report of a run, from its directory: failure clusters, report.md with PNGs, report.html.

A `hone loop` directory holds one summary.json; a `hone demo` directory holds one per arm and a top-level
summary.json that names them. Both end their run here, and `hone report` rebuilds the same files later.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hone.config import read_json

CLUSTERS_K = 6


def arms_of(run_dir: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Path], dict[str, Any]]:
    """(summary per arm, run directory per arm, the top-level summary)."""
    summary = read_json(run_dir / "summary.json", "summary (run `hone loop` or `hone demo` first)")
    if "arms" in summary:
        return summary["arms"], {arm: run_dir / arm for arm in summary["arms"]}, summary
    return {"loop": summary}, {"loop": run_dir}, summary


def final_failures(arm_dir: Path, summary: dict[str, Any]) -> Path:
    """The held-out failures of the model the arm ends with (the last promoted round's benchmark)."""
    last = max((r["round"] for r in summary["rounds"] if r.get("promoted") and (r["round"] == 0 or r.get("candidate"))),
               default=0)
    return arm_dir / f"round-{last}" / "bench" / "failures.jsonl"


def write_clusters_for(arm_dir: Path, summary: dict[str, Any], k: int = CLUSTERS_K) -> Path | None:
    """Cluster the final model's held-out failures into `failure_clusters.json` (None: no benchmark file)."""
    from hone.judge.clusters import CLUSTERS_FILE, cluster_failures, read_failure_rows, write_clusters

    source = final_failures(arm_dir, summary)
    if not source.exists():
        return None
    rows = read_failure_rows(source)
    return write_clusters(cluster_failures(rows, k, seed=int(summary.get("config", {}).get("seed", 0))),
                          arm_dir / CLUSTERS_FILE, source=source.relative_to(arm_dir))


def write_reports(run_dir: str | os.PathLike, html: bool = True) -> dict[str, Path]:
    """Clusters per arm, report.md (+ PNGs) and, unless `html` is False, report.html; returns the paths."""
    from hone.report.html import render_html
    from hone.report.markdown import render_report

    run_dir = Path(run_dir)
    arms, dirs, top = arms_of(run_dir)
    for arm, summary in arms.items():
        write_clusters_for(dirs[arm], summary)
    title = top.get("title") or "Hone run report"
    out = {"markdown": render_report(arms, run_dir, title=title, compared=top.get("verified_vs_control"))}
    if html:
        out["html"] = render_html(arms, dirs, run_dir / "report.html", title,
                                  extra={k: top.get(k) for k in ("seconds", "seed", "base", "verified_vs_control")})
    return out


