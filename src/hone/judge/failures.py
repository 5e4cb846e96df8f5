"""`hone failures`: the items a judge failed, with everything needed to read them side by side.

Each row: id, sample, category, prompt, reference, model output, verdict, judge and reason. The answer in the
generations file must be the one that was judged (same content hash), or the export refuses: stale verdicts
next to new answers would mislead whoever reads them.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from hone.atomic import write_text_atomic
from hone.errors import HoneError
from hone.judge.base import content_sha256
from hone.judge.prompts import render_question
from hone.records import Generation, Task, Verdict, read_records, read_tasks
from hone.runs import Stage, manifest_for
from hone.stage_contract import ProgressFactory, StageConfig, StageResult

FAILED = ("fail", "loss")
COLUMNS = ("id", "sample", "category", "kind", "verdict", "judge", "reason", "prompt", "reference", "output",
           "suite", "outcome")


def failure_row(task: Task, generation: Generation | None, verdict: Verdict, suite: str | None = None) -> dict:
    """One failed item as every failures file writes it (`hone failures`, a benchmark's failures.jsonl)."""
    return {"id": verdict.id, "sample": verdict.sample, "category": str(task.meta.get("category", task.kind)),
            "kind": task.kind, "verdict": verdict.verdict, "judge": verdict.judge, "reason": verdict.reason,
            "prompt": render_question(task), "reference": task.reference or "",
            "output": generation.output if generation is not None else None, "suite": suite,
            "outcome": verdict.evidence.get("outcome", verdict.verdict)}


def _from_manifest(verdicts_path: Path, name: str) -> str | None:
    path = manifest_for(verdicts_path)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text()).get("inputs", {}).get(name, {}).get("path")
    except json.JSONDecodeError:
        return None


class FailuresConfig(StageConfig):
    include_errors: bool = False  # also export the items the judge could not decide
    clusters: int | None = None  # also group the failures into at most this many clusters (hone.judge.clusters)
    seed: int = 0  # of the clustering: same failures + seed = same clusters


class FailuresResult(StageResult):
    """counts: failures (rows written), clusters (when asked for). `clusters` is the clusters file's content."""

    clusters: dict[str, Any] | None = None


def _rows(vpath: Path, tasks_path: str | os.PathLike, generations_path: str | os.PathLike,
          include_errors: bool) -> list[dict]:
    verdicts = read_records(vpath, Verdict)
    tasks = {t.id: t for t in read_tasks(tasks_path)}
    gens = {(g.id, g.sample): g for g in read_records(generations_path, Generation)}
    wanted = FAILED + (("error",) if include_errors else ())
    rows = []
    for v in verdicts:
        if v.verdict not in wanted:
            continue
        task, gen = tasks.get(v.id), gens.get((v.id, v.sample))
        if task is None or gen is None:
            raise HoneError(f"{vpath}: verdict {v.id!r} #{v.sample} has no matching "
                            f"{'task in ' + str(tasks_path) if task is None else 'generation in ' + str(generations_path)}")
        judged = v.evidence.get("judged_sha256")
        if judged is not None and judged != content_sha256(gen):
            raise HoneError(f"{vpath}: verdict {v.id!r} #{v.sample} judged another answer than the one in "
                            f"{generations_path} (stale verdicts? judge again)")
        rows.append(failure_row(task, gen, v))
    return rows


def _write(out: Path, rows: list[dict]) -> None:
    if out.suffix.lower() == ".csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(out, buf.getvalue())
    else:
        write_text_atomic(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def run_failures(config: FailuresConfig, verdicts_path: str | os.PathLike, out_path: str | os.PathLike, *,
                 tasks_path: str | os.PathLike | None = None, generations_path: str | os.PathLike | None = None,
                 clusters_out: str | os.PathLike | None = None, progress: ProgressFactory | None = None
                 ) -> FailuresResult:
    """Write the failures (and, if asked, the errors) as JSONL, or CSV when `out_path` ends in .csv; with
    `config.clusters`, also the clusters (default: `<out stem>.clusters.json`). Tasks and generations default
    to the ones the verdicts' manifest names. `progress` counts the rows written, then the clustering."""
    from hone.judge.clusters import cluster_failures, read_failure_rows, write_clusters

    vpath, out = Path(verdicts_path), Path(out_path)
    tasks_path = tasks_path or _from_manifest(vpath, "tasks")
    generations_path = generations_path or _from_manifest(vpath, "generations")
    if not tasks_path or not generations_path:
        raise HoneError(f"{vpath}: pass --tasks and --generations (no judge manifest next to the verdicts names them)")
    if config.clusters is not None and config.clusters < 1:
        raise HoneError(f"--cluster {config.clusters}: the number of clusters must be at least 1")
    outputs = {"failures": out}
    if config.clusters is not None:
        outputs["clusters"] = Path(clusters_out or out.with_name(out.stem + ".clusters.json"))
    stage = Stage(manifest_for(out), "failures",
                  {"verdicts": vpath, "tasks": tasks_path, "generations": generations_path}, config.fingerprint())
    if stage.is_done() and out.exists():
        clusters = json.loads(outputs["clusters"].read_text()) if "clusters" in outputs else None
        return FailuresResult(outputs=outputs, counts=stage.manifest()["counts"], skipped=True, clusters=clusters)
    rows = _rows(vpath, tasks_path, generations_path, config.include_errors)
    stage.start(list(outputs.values()), restart=config.restart, overwrite=config.overwrite)
    advance = progress(len(rows) + (config.clusters is not None), 0) if progress else None
    _write(out, rows)
    if advance:
        advance(len(rows))
    counts, clusters = {"failures": len(rows)}, None
    if config.clusters is not None:
        clusters = cluster_failures(read_failure_rows(out), config.clusters, seed=config.seed)
        write_clusters(clusters, outputs["clusters"], source=out)
        clusters = {**clusters, "source": str(out)}
        counts["clusters"] = len(clusters["clusters"])
        if advance:
            advance(1)
    stage.finish(outputs, counts)
    return FailuresResult(outputs=outputs, counts=counts, clusters=clusters)
