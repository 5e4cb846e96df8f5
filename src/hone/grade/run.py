"""The `grade` stage: one verifier Verdict per generation of a math or code task, resumable after a kill."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from hone.errors import HoneError
from hone.records import Generation, PartialJsonl, Task, Verdict, read_records, read_tasks
from hone.runs import Stage, manifest_for

if TYPE_CHECKING:
    from hone.grade.sandbox import Limits


def pair_generations(tasks: list[Task], generations: list[Generation], where: str) -> list[tuple[Task, Generation]]:
    """(task, generation) for every generation; a generation for an unknown task is an error, not a skip."""
    by_id = {t.id: t for t in tasks}
    pairs = []
    for g in generations:
        if g.id not in by_id:
            raise HoneError(f"{where}: generation for task id {g.id!r}, which is not in the tasks file")
        pairs.append((by_id[g.id], g))
    return pairs


def run_grade(
    tasks_path: str | os.PathLike,
    generations_path: str | os.PathLike,
    out_path: str | os.PathLike,
    workers: int | None = None,
    progress_factory: Callable[[int, int], Callable[[int], None]] | None = None,
    limits: Limits | None = None,
    *,
    restart: bool = False,
    overwrite: bool = False,
    sandbox: str = "strict",
) -> tuple[list[Verdict], bool]:
    """Grade every generation not already in `<out>.partial`; return (verdicts, skipped_whole_stage).

    Open tasks get no verdict here (no verifier can decide them; the judge does). The manifest records the
    grader versions, sandbox limits and level, so a changed grader re-grades instead of reusing old verdicts.
    `sandbox` "strict" refuses (HoneError, before any work) to run code answers without full isolation.
    """
    from hone.grade import grader_versions, iter_verdicts
    from hone.grade.code import DEFAULT_LIMITS
    from hone.grade.sandbox import require_for

    out = Path(out_path)
    limits = limits or DEFAULT_LIMITS
    stage = Stage(manifest_for(out), "grade", {"tasks": tasks_path, "generations": generations_path},
                  {"graders": grader_versions(), "limits": limits.as_job(), "sandbox": sandbox})
    if stage.is_done() and out.exists():
        return read_records(out, Verdict, allow_empty=True), True
    tasks = read_tasks(tasks_path)
    pairs = pair_generations(tasks, read_records(generations_path, Generation), str(generations_path))
    iso = require_for([t for t, _ in pairs], sandbox)
    stage.start([out], restart=restart, overwrite=overwrite)
    sink = PartialJsonl(out, Verdict, key=lambda v: (v.id, v.sample))
    try:
        todo = [(t, g) for t, g in pairs if t.kind != "open" and (g.id, g.sample) not in sink.done]
        progress = progress_factory(len(todo), len(sink.done)) if progress_factory else None
        for i, verdict in iter_verdicts(todo, workers, progress, limits, sandbox):
            if verdict is not None:
                sink.append(verdict)
        order = {t.id: i for i, t in enumerate(tasks)}
        records = sink.finish(order=lambda v: (order.get(v.id, len(order)), v.sample))
    finally:
        sink.close()
    counts = Counter(v.verdict for v in records)
    summary = {"generations": len(pairs), "open_ungraded": sum(t.kind == "open" for t, _ in pairs),
               **{k: counts.get(k, 0) for k in ("pass", "fail", "error")}}
    if iso is not None:
        summary["sandbox"] = f"{sandbox}: {iso.describe()}"
    stage.finish({"verdicts": out}, summary)
    return records, False
