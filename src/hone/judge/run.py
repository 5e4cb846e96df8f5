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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hone.errors import HoneError
from hone.judge.base import error_verdict, is_retryable
from hone.judge.config import JudgeConfig, load_judge_config
from hone.judge.driver import Job, compare_jobs, grade_jobs, run_jobs
from hone.judge.factory import default_cache_path, make_judge
from hone.judge.prompts import GRADE, PAIRWISE
from hone.judge.spec import JudgeSpec
from hone.records import Generation, PartialJsonl, Task, Verdict, read_records, read_tasks
from hone.runs import Stage, manifest_for


@dataclass
class JudgeRun:
    verdicts: list[Verdict]
    skipped: bool
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def unfinished(self) -> int:
        """Items that ended as errors a re-run may fix."""
        return sum(is_retryable(v) for v in self.verdicts)


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


def summarize(verdicts: list[Verdict]) -> dict[str, Any]:
    outcomes = Counter(v.verdict for v in verdicts)
    errors = Counter(v.evidence.get("error_kind", "?") for v in verdicts if v.verdict == "error")
    out: dict[str, Any] = {"items": len(verdicts), **{k: outcomes.get(k, 0) for k in sorted(outcomes)},
                           "errors_by_kind": dict(sorted(errors.items()))}
    if any(v.verdict in ("win", "tie", "loss") for v in verdicts):
        out["inconsistent_ties"] = sum(v.verdict == "tie" and v.evidence.get("consistent") is False for v in verdicts)
    return out


def run_judge(tasks_path: str | os.PathLike, generations_path: str | os.PathLike, out_path: str | os.PathLike,
              judge_spec: JudgeSpec | str, *, pairwise: str | os.PathLike | None = None, concurrency: int = 8,
              budget_usd: float | None = None, batch: bool = False, run_dir: str | os.PathLike | None = None,
              progress_factory: Callable[[int, int], Callable[[int], None]] | None = None,
              config: JudgeConfig | str | os.PathLike | None = None, second_opinion: bool = False,
              restart: bool = False, overwrite: bool = False, sandbox: str = "strict", **settings: Any) -> JudgeRun:
    """Judge every generation (grade, or `pairwise` against a reference generation file).

    With verifiers in the judge and code tasks to decide, `sandbox` "strict" refuses before any work where the
    code sandbox cannot isolate fully (hone.grade.sandbox.require); the level is part of the stage's config.
    """
    out = Path(out_path)
    task_list = read_tasks(tasks_path)
    tasks = {t.id: t for t in task_list}
    gens = read_generations(generations_path, tasks, tasks_path)
    refs = reference_answers(pairwise) if pairwise else None
    cfg = config if isinstance(config, JudgeConfig) else load_judge_config(config)
    if settings:
        cfg = JudgeConfig.model_validate({**cfg.model_dump(), **settings})
    spec = JudgeSpec.parse(judge_spec)
    inputs = {"tasks": tasks_path, "generations": generations_path, "pairwise": pairwise,
              "judge_model": spec.model_dir}
    # Only what changes the verdicts decides whether a finished stage can be skipped.
    stage_config = {"judge": spec.text, "template": PAIRWISE if pairwise else GRADE, "max_tokens": cfg.max_tokens,
                    "reask": cfg.reask, "temperature": cfg.temperature, "second_opinion": second_opinion}
    if spec.verifiers:
        stage_config["sandbox"] = sandbox
        from hone.grade.sandbox import require_for

        require_for(task_list, sandbox)
    stage = Stage(manifest_for(out), "judge", inputs, stage_config)
    if stage.is_done() and out.exists():
        verdicts = read_records(out, Verdict)
        return JudgeRun(verdicts, True, summarize(verdicts))
    stage.start([out], restart=restart, overwrite=overwrite)
    order = {t.id: i for i, t in enumerate(task_list)}

    def position(v: Verdict) -> tuple[int, int]:
        return order[v.id], v.sample

    sink = PartialJsonl(out, Verdict, key=lambda v: (v.id, v.sample))
    retry_later: list[Verdict] = []
    judge_summary: dict[str, Any] = {}
    try:
        todo = [g for g in gens if (g.id, g.sample) not in sink.done]
        if todo:
            judge = make_judge(spec, cache_path=default_cache_path(run_dir or out.parent),
                               concurrency=concurrency, budget_usd=budget_usd, batch=batch, config=cfg,
                               second_opinion=second_opinion, sandbox=sandbox)
            jobs = _jobs(judge, tasks, todo, refs)
            progress = progress_factory(len(todo), len(sink.done)) if progress_factory else None

            def keep(v: Verdict) -> None:
                retry_later.append(v) if is_retryable(v) else sink.append(v)

            async def main() -> None:
                try:
                    await run_jobs(judge, jobs, on_result=keep, progress=progress)
                finally:
                    await judge.aclose()

            asyncio.run(main())
            judge_summary = judge.summary() if hasattr(judge, "summary") else {}
        verdicts = sink.finish(order=position, unfinished=retry_later)
    finally:
        sink.close()
    summary = {**summarize(verdicts), "judge_calls": judge_summary}
    if not retry_later:
        stage.finish({"verdicts": out}, summary)
    return JudgeRun(verdicts, False, summary)


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
