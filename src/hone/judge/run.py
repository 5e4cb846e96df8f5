"""The `judge` stage: one verdict per generation, resumable after a kill, never paying twice.

Final verdicts are appended to `<out>.partial` as they come; answers are in the SQLite cache before they are
used. A killed run loses at most the calls in flight; the re-run skips finished items and reads every answer it
already paid for from the cache. Items that ended as errors a later run may fix (API failures, an exhausted
budget) are written to the output, which names them, but are not final: the stage stays unfinished and the
next run judges only those items again.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hone.errors import HoneError
from hone.judge.base import error_verdict, is_retryable
from hone.judge.driver import Job, compare_jobs, grade_jobs, run_jobs
from hone.judge.factory import JudgeSetup
from hone.judge.prompts import GRADE, PAIRWISE
from hone.records import Generation, PartialJsonl, Task, Verdict, read_records, read_tasks
from hone.runs import Stage, manifest_for
from hone.stage_contract import ProgressFactory, StageConfig, StageResult


class JudgeStageConfig(StageConfig):
    """The judge stage's settings: the judge and how it is called, the Message Batches API, and whether a composite
    judge also asks the LLM where a verifier decided. Only what changes the verdicts goes into the fingerprint:
    a raised budget or other limits resume the same stage."""

    judge: JudgeSetup
    batch: bool = False
    second_opinion: bool = False

    def fingerprint(self) -> dict:
        s = self.judge.settings
        out = {"judge": self.judge.spec.text, "max_tokens": s.max_tokens, "reask": s.reask,
               "temperature": s.temperature, "second_opinion": self.second_opinion}
        if self.judge.spec.verifiers:
            from hone.grade import grader_versions

            out.update(sandbox=self.judge.sandbox, graders=grader_versions())
        return out


class JudgeReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    errors_by_kind: dict[str, int] = Field(default_factory=dict)
    inconsistent_ties: int | None = None  # pairwise: ties whose two orders disagreed
    judge_calls: dict[str, Any] = Field(default_factory=dict)  # this run's calls and the ledger (judge.summary())
    sandbox: str | None = None  # "level: isolation" where code answers were run


class JudgeResult(StageResult):
    """counts: items, each verdict outcome that occurred (pass, fail, win, tie, loss, error), and `unfinished`:
    items that ended as errors a re-run may fix (the stage is then not complete)."""

    verdicts: list[Verdict]
    report: JudgeReport


def read_generations(path: str | os.PathLike, tasks: dict[str, Task], tasks_path: str | os.PathLike) -> list[Generation]:
    gens = read_records(path, Generation)
    seen: set[tuple[str, int]] = set()
    for g in gens:
        if g.id not in tasks:
            raise HoneError(f"{path}: generation {g.id!r} #{g.sample} has no task in {tasks_path}")
        if (g.id, g.sample) in seen:
            raise HoneError(f"{path}: generation {g.id!r} #{g.sample} appears twice")
        seen.add((g.id, g.sample))
    return gens


def reference_answers(path: str | os.PathLike) -> dict[str, Generation]:
    """The generation each item is compared with: the lowest sample of that id in the reference file."""
    refs: dict[str, Generation] = {}
    for g in read_records(path, Generation):
        if g.id not in refs or g.sample < refs[g.id].sample:
            refs[g.id] = g
    return refs


def summarize(out: Path, verdicts: list[Verdict], judge_calls: dict[str, Any], skipped: bool) -> JudgeResult:
    outcomes = Counter(v.verdict for v in verdicts)
    errors = Counter(v.evidence.get("error_kind", "?") for v in verdicts if v.verdict == "error")
    pairwise = any(v.verdict in ("win", "tie", "loss") for v in verdicts)
    ran_code = next((v.evidence for v in verdicts if "isolation" in v.evidence), None)
    report = JudgeReport(
        errors_by_kind=dict(sorted(errors.items())), judge_calls=judge_calls,
        inconsistent_ties=sum(v.verdict == "tie" and v.evidence.get("consistent") is False for v in verdicts)
        if pairwise else None,
        sandbox=f"{ran_code.get('sandbox')}: {ran_code['isolation']}" if ran_code else None)
    counts = {"items": len(verdicts), **{k: outcomes[k] for k in sorted(outcomes)},
              "unfinished": sum(is_retryable(v) for v in verdicts)}
    return JudgeResult(outputs={"verdicts": out}, counts=counts, skipped=skipped, verdicts=verdicts, report=report)


def run_judge(config: JudgeStageConfig, tasks_path: str | os.PathLike, generations_path: str | os.PathLike,
              out_path: str | os.PathLike, *, pairwise: str | os.PathLike | None = None,
              progress: ProgressFactory | None = None) -> JudgeResult:
    """Judge every generation (grade, or win/tie/loss against the reference generations in `pairwise`).

    With verifiers in the judge and code tasks to decide, sandbox "strict" refuses before any work where the
    code sandbox cannot isolate fully (hone.grade.sandbox.require); the level is part of the stage's config.
    """
    out = Path(out_path)
    task_list = read_tasks(tasks_path)
    tasks = {t.id: t for t in task_list}
    gens = read_generations(generations_path, tasks, tasks_path)
    refs = reference_answers(pairwise) if pairwise else None
    setup = config.judge
    inputs = {"tasks": tasks_path, "generations": generations_path, "pairwise": pairwise,
              "judge_model": setup.spec.model_dir}
    if setup.spec.verifiers:
        from hone.grade.sandbox import require_for

        require_for(task_list, setup.sandbox)
    stage = Stage(manifest_for(out), "judge", inputs,
                  {**config.fingerprint(), "template": PAIRWISE if pairwise else GRADE})
    if stage.is_done() and out.exists():
        return summarize(out, read_records(out, Verdict), {}, skipped=True)
    stage.start([out], restart=config.restart, overwrite=config.overwrite)
    order = {t.id: i for i, t in enumerate(task_list)}

    def position(v: Verdict) -> tuple[int, int]:
        return order[v.id], v.sample

    sink = PartialJsonl(out, Verdict, key=lambda v: (v.id, v.sample))
    retry_later: list[Verdict] = []
    judge_calls: dict[str, Any] = {}
    try:
        todo = [g for g in gens if (g.id, g.sample) not in sink.done]
        if todo:
            judge = setup.make(out.parent, batch=config.batch, second_opinion=config.second_opinion)
            jobs = _jobs(judge, tasks, todo, refs)
            advance = progress(len(todo), len(sink.done)) if progress else None

            def keep(v: Verdict) -> None:
                retry_later.append(v) if is_retryable(v) else sink.append(v)

            async def main() -> None:
                try:
                    await run_jobs(judge, jobs, on_result=keep, progress=advance)
                finally:
                    await judge.aclose()

            asyncio.run(main())
            judge_calls = judge.summary() if hasattr(judge, "summary") else {}
        verdicts = sink.finish(order=position, unfinished=retry_later)
    finally:
        sink.close()
    result = summarize(out, verdicts, judge_calls, skipped=False)
    if not retry_later:
        stage.finish({"verdicts": out}, {**result.counts, **result.report.model_dump(exclude_none=True)})
    return result


def _jobs(judge: Any, tasks: dict[str, Task], todo: list[Generation], refs: dict[str, Generation] | None) -> list[Job]:
    if refs is None:
        return grade_jobs(judge, [(tasks[g.id], g) for g in todo])
    jobs: list[Job] = []
    for g in todo:
        if g.id in refs:
            jobs += compare_jobs(judge, [(tasks[g.id], g, refs[g.id])])
        else:
            async def missing(g: Generation = g) -> Verdict:
                return error_verdict(g, judge.name, "no reference generation for this id in the --pairwise file",
                                     "no_reference")
            jobs.append((g, missing))
    return jobs
