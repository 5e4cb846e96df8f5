"""The `grade` stage: one verifier Verdict per generation of a math or code task, resumable after a kill."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from hone.errors import HoneError
from hone.grade.sandbox import Isolation, Limits
from hone.records import Generation, PartialJsonl, Task, Verdict, read_records, read_tasks
from hone.runs import Stage, manifest_for
from hone.stage_contract import ProgressFactory, StageConfig, StageResult


def pair_generations(tasks: list[Task], generations: list[Generation], where: str) -> list[tuple[Task, Generation]]:
    """(task, generation) for every generation; a generation for an unknown task is an error, not a skip."""
    by_id = {t.id: t for t in tasks}
    pairs = []
    for g in generations:
        if g.id not in by_id:
            raise HoneError(f"{where}: generation for task id {g.id!r}, which is not in the tasks file")
        pairs.append((by_id[g.id], g))
    return pairs


class GradeConfig(StageConfig):
    """The grade stage's settings. Its fingerprint holds the grader versions, the sandbox limits and level, so
    a changed grader re-grades instead of reusing old verdicts; `workers` only sets the pace."""

    workers: int | None = None  # parallel graders (None: all cores)
    limits: Limits = Limits()
    sandbox: str = "strict"  # "strict" refuses (before any work) to run code answers without full isolation

    def fingerprint(self) -> dict:
        from hone.grade import grader_versions

        return {"graders": grader_versions(), "limits": self.limits.as_job(), "sandbox": self.sandbox}


class GradeResult(StageResult):
    verdicts: list[Verdict]
    isolation: Isolation | None = None  # what the sandbox could do, where code answers were run


def _result(out: Path, verdicts: list[Verdict], counts: dict[str, int], skipped: bool) -> GradeResult:
    from hone.grade.sandbox import isolation

    ran_code = any(v.judge.startswith("verifier:code") for v in verdicts)
    return GradeResult(outputs={"verdicts": out}, skipped=skipped, verdicts=verdicts,
                       counts={**counts, "timeouts": sum(v.evidence.get("outcome") == "timeout" for v in verdicts)},
                       isolation=isolation() if ran_code else None)


def run_grade(config: GradeConfig, tasks_path: str | os.PathLike, generations_path: str | os.PathLike,
              out_path: str | os.PathLike, *, progress: ProgressFactory | None = None) -> GradeResult:
    """Grade every generation not already in `<out>.partial`.

    Open tasks get no verdict here (no verifier can decide them; the judge does).
    """
    from hone.grade import iter_verdicts
    from hone.grade.sandbox import require_for

    out = Path(out_path)
    stage = Stage(manifest_for(out), "grade", {"tasks": tasks_path, "generations": generations_path},
                  config.fingerprint())
    if stage.is_done() and out.exists():
        counts = {k: v for k, v in stage.manifest()["counts"].items() if k != "sandbox"}
        return _result(out, read_records(out, Verdict, allow_empty=True), counts, skipped=True)
    tasks = read_tasks(tasks_path)
    pairs = pair_generations(tasks, read_records(generations_path, Generation), str(generations_path))
    iso = require_for([t for t, _ in pairs], config.sandbox)
    stage.start([out], restart=config.restart, overwrite=config.overwrite)
    sink = PartialJsonl(out, Verdict, key=lambda v: (v.id, v.sample))
    try:
        todo = [(t, g) for t, g in pairs if t.kind != "open" and (g.id, g.sample) not in sink.done]
        advance = progress(len(todo), len(sink.done)) if progress else None
        for i, verdict in iter_verdicts(todo, config.workers, advance, config.limits, config.sandbox):
            if verdict is not None:
                sink.append(verdict)
        order = {t.id: i for i, t in enumerate(tasks)}
        records = sink.finish(order=lambda v: (order.get(v.id, len(order)), v.sample))
    finally:
        sink.close()
    outcomes = Counter(v.verdict for v in records)
    counts = {"generations": len(pairs), "open_ungraded": sum(t.kind == "open" for t, _ in pairs),
              **{k: outcomes.get(k, 0) for k in ("pass", "fail", "error")}}
    stage.finish({"verdicts": out}, {**counts, **({"sandbox": f"{config.sandbox}: {iso.describe()}"} if iso else {})})
    return _result(out, records, counts, skipped=False)
