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

from hone.atomic import write_text_atomic
from hone.errors import HoneError
from hone.judge.base import content_sha256
from hone.judge.prompts import render_question
from hone.records import Generation, Task, Verdict, read_records, read_tasks
from hone.runs import manifest_for

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


def run_failures(verdicts_path: str | os.PathLike, out_path: str | os.PathLike,
                 tasks_path: str | os.PathLike | None = None, generations_path: str | os.PathLike | None = None,
                 include_errors: bool = False) -> int:
    """Write the failures (and, if asked, the errors) as JSONL, or CSV when `out_path` ends in .csv."""
    vpath = Path(verdicts_path)
    verdicts = read_records(vpath, Verdict)
    tasks_path = tasks_path or _from_manifest(vpath, "tasks")
    generations_path = generations_path or _from_manifest(vpath, "generations")
    if not tasks_path or not generations_path:
        raise HoneError(f"{vpath}: pass --tasks and --generations (no judge manifest next to the verdicts names them)")
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
    out = Path(out_path)
    if out.suffix.lower() == ".csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(out, buf.getvalue())
    else:
        write_text_atomic(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return len(rows)
