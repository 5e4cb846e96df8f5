"""The `sample` stage: n answers per training prompt, graded; prompts with no pass yet are sampled again.

Each pass is a generate stage and a grade (verifiers) or judge stage of its own, so a killed pass resumes from its
partial files. The stage's manifest (`samples.jsonl.manifest.json`) covers the whole of it: the prompts, the
model, the sampling settings and the judge's fingerprint. A finished stage with the same fingerprint is skipped
without loading a model; `restart` discards what another fingerprint made, pass by pass.

    <out_dir>/prompts.jsonl          this round's prompts, where they are a slice of the pool
    <out_dir>/samples-<pass>.jsonl   the answers of each pass; verdicts-<pass>.jsonl their verdicts
    <out_dir>/unsolved-<pass>.jsonl  the prompts a later pass samples again
    <out_dir>/samples.jsonl          every pass's answers, `sample` numbered uniquely; verdicts.jsonl likewise
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field

from hone.errors import HoneError
from hone.generate.base import Generator
from hone.generate.run import GenerateStageConfig, run_generate
from hone.grade.gap import ScorerGap, scorer_gap
from hone.judge.factory import JudgeSetup
from hone.progress import TokenRate
from hone.records import Generation, Task, Verdict, read_records, read_tasks, write_records
from hone.runs import Stage, manifest_for
from hone.stage_contract import StageConfig, StageResult, StepProgress


def round_prompts(pool: list[Task], per_round: int | None, r: int) -> list[Task]:
    """Round r's prompts: the next `per_round` of the pool, wrapping around. Fresh prompts each round, because
    re-sampling prompts the previous round trained on mostly returns answers it has memorized (measured on the
    demo: 1,699 vs 1,544 of 3,000 solved, same model)."""
    if per_round is None or per_round >= len(pool):
        return pool
    start = (r - 1) * per_round % len(pool)
    return (pool + pool)[start : start + per_round]


def pass_outputs(out_dir: str | os.PathLike, attempt: int) -> tuple[Path, Path]:
    """(answers, verdicts) of sampling pass `attempt`."""
    return Path(out_dir) / f"samples-{attempt}.jsonl", Path(out_dir) / f"verdicts-{attempt}.jsonl"


class SampleStageConfig(StageConfig):
    """How a round samples: `generate` (n, temperature, ..., and the model the answers depend on; pass p samples
    with seed `params.seed + p`), extra passes for the unsolved, which prompts of the pool (`prompts_per_round`
    from round `round` on), and who grades them: `judge` None means the verifiers alone, at `sandbox`."""

    generate: GenerateStageConfig = GenerateStageConfig()
    resample_unsolved: int = Field(0, ge=0)
    prompts_per_round: int | None = Field(None, ge=1)
    round: int = Field(1, ge=1)
    judge: JudgeSetup | None = None
    sandbox: str = "strict"

    def generate_config(self, attempt: int) -> GenerateStageConfig:
        params = self.generate.params.model_copy(update={"seed": self.generate.params.seed + attempt})
        return self.generate.model_copy(update={"params": params, "restart": self.restart,
                                                "overwrite": self.overwrite})

    def fingerprint(self) -> dict:
        from hone.grade.run import GradeConfig
        from hone.judge.run import JudgeStageConfig

        grading = (GradeConfig(sandbox=self.sandbox) if self.judge is None else JudgeStageConfig(judge=self.judge))
        return {"generate": self.generate_config(0).fingerprint(), "resample_unsolved": self.resample_unsolved,
                "prompts_per_round": self.prompts_per_round, "round": self.round, "grading": grading.fingerprint()}


class SampleReport(BaseModel):
    """What a round's sampling found: prompts, how many have a verified answer (after each pass), answers,
    verdicts that are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: int
    solved: int
    samples: int
    errors: int
    solved_after_pass: list[int] = Field(default_factory=list)
    # the verifier against the strict second reading on these answers (the round's training material); a gap that
    # rises round after round is the first sign of a model learning its grader (hone.grade.gap.rising_gap)
    scorer_gap: ScorerGap | None = None


class SampleResult(StageResult):
    generations: list[Generation]
    verdicts: list[Verdict]
    report: SampleReport


def _report(tasks: list[Task], gens: list[Generation], verdicts: list[Verdict], after: list[int]) -> SampleReport:
    gap = scorer_gap({t.id: t for t in tasks}, gens, verdicts)
    return SampleReport(tasks=len(tasks), solved=len({v.id for v in verdicts if v.verdict == "pass"}),
                        samples=len(gens), errors=sum(v.verdict == "error" for v in verdicts),
                        solved_after_pass=after, scorer_gap=gap if gap.answers else None)


def _grade(config: SampleStageConfig, tasks: Path, gens: Path, out: Path, steps: StepProgress | None,
           label: str) -> list[Verdict]:
    """Verifiers alone run straight through the grader (no async judge machinery, ~1.6x faster)."""
    if config.judge is None:
        from hone.grade.run import GradeConfig, run_grade

        with _step(steps, f"{label} · grade", None) as bar:
            grading = GradeConfig(sandbox=config.sandbox, restart=config.restart, overwrite=config.overwrite)
            return run_grade(grading, tasks, gens, out, progress=bar).verdicts
    from hone.judge.cache import spend_text
    from hone.judge.run import JudgeStageConfig, run_judge

    judge = config.judge.model_copy(update={"run_dir": config.judge.run_dir or out.parent})
    with _step(steps, f"{label} · judge", lambda: spend_text(judge.run_dir, judge.budget_usd)) as bar:
        run = run_judge(JudgeStageConfig(judge=judge, restart=config.restart, overwrite=config.overwrite),
                        tasks, gens, out, progress=bar)
    if run.counts["unfinished"]:
        raise HoneError(f"{out}: {run.counts['unfinished']} items ended in errors a re-run may fix (API, budget); "
                        "run the same command again to finish them before training on this round")
    return run.verdicts


class _step:  # noqa: N801 - a context manager around one step's progress factory
    def __init__(self, steps: StepProgress | None, label: str, note: Callable[[], str] | None):
        self.factory = steps(label, note) if steps else None

    def __enter__(self):
        return self.factory

    def __exit__(self, *exc: object) -> None:
        if self.factory is not None and hasattr(self.factory, "close"):
            self.factory.close()


def run_sample(config: SampleStageConfig, make_generator: Callable[[], Generator], pool_path: str | os.PathLike,
               out_dir: str | os.PathLike, *, progress: StepProgress | None = None) -> SampleResult:
    """Sample this round's prompts of the pool at `pool_path`, grade, resample the unsolved; `make_generator` is
    called only when a pass has something to generate. `progress(step, note)` opens each step's bar."""
    out = Path(out_dir)
    samples_path, verdicts_path = out / "samples.jsonl", out / "verdicts.jsonl"
    pool = read_tasks(pool_path)
    tasks = round_prompts(pool, config.prompts_per_round, config.round)
    stage = Stage(manifest_for(samples_path), "sample",
                  {"tasks": pool_path, **config.generate_config(0).model_inputs()}, config.fingerprint())
    outputs = {"samples": samples_path, "verdicts": verdicts_path}
    if stage.is_done():
        gens, verdicts = read_records(samples_path, Generation), read_records(verdicts_path, Verdict)
        after = (stage.manifest() or {}).get("counts", {}).get("solved_after_pass", [])
        report = _report(tasks, gens, verdicts, after)
        return SampleResult(outputs=outputs, skipped=True, generations=gens, verdicts=verdicts, report=report,
                            counts=_counts(report))
    stage.start([samples_path, verdicts_path], restart=config.restart, overwrite=config.overwrite)
    todo_path = Path(pool_path)
    if len(tasks) < len(pool):
        todo_path = out / "prompts.jsonl"
        write_records(todo_path, tasks)
    all_gens: list[Generation] = []
    all_verdicts: list[Verdict] = []
    after: list[int] = []
    n = config.generate.params.n
    for attempt in range(1 + config.resample_unsolved):
        (gens_path, verdicts_out), label = pass_outputs(out, attempt), f"pass {attempt}"
        with _step(progress, f"{label} · sample", TokenRate(gens_path)) as bar:
            gens = run_generate(config.generate_config(attempt), make_generator, todo_path, gens_path,
                                progress=bar).generations
        verdicts = _grade(config, todo_path, gens_path, verdicts_out, progress, label)
        offset = attempt * n  # keep (id, sample) unique across passes
        all_gens += [g.model_copy(update={"sample": g.sample + offset}) for g in gens]
        all_verdicts += [v.model_copy(update={"sample": v.sample + offset}) for v in verdicts]
        solved = {v.id for v in all_verdicts if v.verdict == "pass"}
        after.append(len(solved))
        unsolved = [t for t in tasks if t.id not in solved]
        if not unsolved or attempt == config.resample_unsolved:
            break
        todo_path = out / f"unsolved-{attempt + 1}.jsonl"
        write_records(todo_path, unsolved)
    write_records(samples_path, all_gens)
    write_records(verdicts_path, all_verdicts)
    report = _report(tasks, all_gens, all_verdicts, after)
    counts = _counts(report)
    stage.finish(outputs, {**counts, "solved_after_pass": after})
    return SampleResult(outputs=outputs, counts=counts, generations=all_gens, verdicts=all_verdicts, report=report)


def _counts(report: SampleReport) -> dict[str, int]:
    return {"tasks": report.tasks, "solved": report.solved, "samples": report.samples, "errors": report.errors}
