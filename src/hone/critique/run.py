"""The `critique` stage: the model critiques and rewrites its own failed answers; the same judge re-checks them.

Only answers judged `fail` are critiqued (never `error`, `tie` or `pass`). In self-critique mode the model sees
the task, its own answer and the judge's feedback with the reference withheld; in reference-guided mode it
also sees the reference, and every record says "distillation". Each rewrite is judged live by `rejudge`,
which must be the judge that produced the original verdicts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from pydantic import Field, field_validator, model_validator

from hone.critique.feedback import describe_failure
from hone.critique.prompts import PROMPT_VERSION, REWRITE_REQUEST, critique_request
from hone.critique.summary import CritiqueSummary, summarize
from hone.errors import HoneError
from hone.generate.base import GenParams, Generator, Request
from hone.judge.base import content_sha256, is_retryable
from hone.records import Critique, Generation, PartialJsonl, Task, Verdict, read_records, read_tasks
from hone.runs import Stage, manifest_for
from hone.stage_contract import ProgressFactory, StageConfig, StageResult

if TYPE_CHECKING:
    from hone.generate.registry import GenerateConfig
    from hone.judge.factory import JudgeSetup

Rejudge = Callable[[list[tuple[Task, Generation]]], list[Verdict]]


@dataclass(frozen=True)
class FailedAnswer:
    """One answer to critique: the task, the failed generation and the verdict that failed it."""

    task: Task
    generation: Generation
    verdict: Verdict


@dataclass(frozen=True)
class Attempt:
    item: FailedAnswer
    attempt: int
    feedback: str
    first_turn: list[dict[str, str]]

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.item.task.id, self.item.generation.sample, self.attempt)


def judged_other_answer(verdict: Verdict, generation: Generation) -> bool:
    """True when the verdict names the hash of what it judged and that is not this generation's output."""
    judged = verdict.evidence.get("judged_sha256")
    return judged is not None and judged != content_sha256(generation)


def failed_answers(tasks_path: str | os.PathLike, generations_path: str | os.PathLike,
                   verdicts_path: str | os.PathLike) -> list[FailedAnswer]:
    """Every (task, generation, verdict) whose verdict is `fail`; inconsistent inputs are a clear error."""
    tasks = {t.id: t for t in read_tasks(tasks_path)}
    generations: dict[tuple[str, int], Generation] = {}
    for g in read_records(generations_path, Generation):
        if (g.id, g.sample) in generations:
            raise HoneError(f"{generations_path}: two generations for item {g.id!r} sample {g.sample}")
        generations[(g.id, g.sample)] = g
    seen: set[tuple[str, int]] = set()
    out = []
    for v in read_records(verdicts_path, Verdict):
        key = (v.id, v.sample)
        if key in seen:
            raise HoneError(f"{verdicts_path}: two verdicts for item {v.id!r} sample {v.sample}")
        seen.add(key)
        if v.id not in tasks:
            raise HoneError(f"{verdicts_path}: verdict for {v.id!r}, which is not a task in {tasks_path}")
        if key not in generations:
            raise HoneError(f"{verdicts_path}: verdict for {v.id!r} sample {v.sample} has no generation in "
                            f"{generations_path}")
        if judged_other_answer(v, generations[key]):
            raise HoneError(f"{verdicts_path}: the verdict for {v.id!r} sample {v.sample} judged another answer "
                            f"than the one in {generations_path} (stale verdicts? judge again)")
        if v.verdict == "fail":
            out.append(FailedAnswer(tasks[v.id], generations[key], v))
    return out


def first_turn(item: FailedAnswer, feedback: str, reference_guided: bool) -> list[dict[str, str]]:
    """The task, the model's own answer, and the critique request (with the reference only if guided)."""
    reference = item.task.reference if reference_guided else None
    return [*item.task.chat(), {"role": "assistant", "content": item.generation.output},
            {"role": "user", "content": critique_request(feedback, reference)}]


def second_turn(attempt: Attempt, critique: str) -> list[dict[str, str]]:
    return [*attempt.first_turn, {"role": "assistant", "content": critique},
            {"role": "user", "content": REWRITE_REQUEST}]


def _generate(generator: Generator, attempts: Sequence[Attempt], turns: Sequence[list[dict[str, str]]],
              params: GenParams, samples: int) -> list[Generation]:
    """One generation per attempt, matched back by (id, sample), where the request's sample numbers the
    (original sample, attempt) pair uniquely."""
    def slot(a: Attempt) -> tuple[str, int]:
        return a.item.task.id, a.item.generation.sample * samples + a.attempt

    position = {slot(a): n for n, a in enumerate(attempts)}
    requests = [Request(*slot(a), messages=t) for a, t in zip(attempts, turns)]
    out: list[Generation | None] = [None] * len(attempts)
    for g in generator.generate(requests, params):
        out[position[(g.id, g.sample)]] = g
    if any(g is None for g in out):
        raise HoneError(f"generator {generator.name}: returned fewer answers than requests")
    return out  # type: ignore[return-value]


def _rejudge(rejudge: Rejudge, attempts: Sequence[Attempt], rewrites: Sequence[Generation]) -> list[Verdict]:
    """Live verdicts for the rewrites, matched by (id, sample), never by position alone."""
    items = [(a.item.task, g) for a, g in zip(attempts, rewrites)]
    verdicts = rejudge(items)
    by_key = {(v.id, v.sample): v for v in verdicts}
    missing = [(g.id, g.sample) for g in rewrites if (g.id, g.sample) not in by_key]
    if len(verdicts) != len(items) or missing:
        raise HoneError(f"rejudge returned {len(verdicts)} verdicts for {len(items)} rewrites"
                        + (f"; none for {missing[0][0]!r}" if missing else ""))
    for a, g in zip(attempts, rewrites):
        v = by_key[(g.id, g.sample)]
        if judged_other_answer(v, g):
            raise HoneError(f"{g.id!r}: rejudge returned a verdict about another answer than the rewrite")
        if v.verdict != "error" and v.judge != a.item.verdict.judge:
            raise HoneError(f"{g.id!r}: the rewrite was judged by {v.judge!r} but the original by "
                            f"{a.item.verdict.judge!r}; uplift needs the same judge on both")
    return [by_key[(g.id, g.sample)] for g in rewrites]


def _record(a: Attempt, critique: Generation, rewrite: Generation, verdict: Verdict | None, model: str,
            mode: str, round: int | None) -> Critique:
    item = a.item
    if verdict is None:  # the generator failed on this item: an explicit error, never a pass
        bad = critique if critique.finish_reason == "error" else rewrite
        outcome, reason = "error", f"generation failed: {bad.output[:300]}"
    else:
        outcome, reason = verdict.verdict, verdict.reason
    return Critique(id=item.task.id, sample=item.generation.sample, attempt=a.attempt, mode=mode, model=model,
                    judge=item.verdict.judge, original=item.generation.output,
                    original_verdict=item.verdict.verdict, feedback=a.feedback, critique=critique.output,
                    rewrite=rewrite.output, rewrite_verdict=outcome, rewrite_reason=reason,
                    accepted=outcome == "pass", round=round)


class CritiqueStageConfig(StageConfig):
    """How each failed answer is critiqued: `samples` attempts drawn with `params`, the reference shown only when
    `reference_guided` (distillation), the loop round recorded in each record. `model_ref` names the model
    folder (hashed into the manifest) when the generator's name alone does not pin it."""

    params: GenParams
    samples: int = 1
    reference_guided: bool = False
    round: int | None = None
    model_ref: dict[str, str | None] = Field(default_factory=dict)

    @field_validator("model_ref", mode="before")
    @classmethod
    def _as_text(cls, value: dict) -> dict:
        return {k: None if v is None else str(v) for k, v in value.items()}

    @model_validator(mode="after")
    def _check_sampling(self) -> "CritiqueStageConfig":
        if self.samples < 1:
            raise HoneError(f"samples must be at least 1 (got {self.samples})")
        if self.samples > 1 and self.params.greedy:
            raise HoneError(f"{self.samples} samples per answer need a temperature above 0 (greedy would repeat one)")
        return self

    @property
    def mode(self) -> str:
        return "distillation" if self.reference_guided else "self-critique"

    def fingerprint(self) -> dict:
        from hone.grade import grader_versions

        # the rewrites are re-checked live, by the verifiers where they decide
        return {"mode": self.mode, "samples": self.samples, "round": self.round, "prompts": PROMPT_VERSION,
                "params": self.params.model_dump(exclude={"batch_size", "n"}), "graders": grader_versions()}


class CritiqueResult(StageResult):
    """counts: failed_answers, attempts, accepted, errors, and `unfinished`: attempts whose generation failed or
    whose verdict is a retryable judge error (the stage is then not complete; a re-run redoes only those)."""

    critiques: list[Critique]
    report: CritiqueSummary


def check_engine(engine: GenerateConfig) -> None:
    """The critique stage serves the model whose answers failed; a server somebody else runs is not that model."""
    if engine.backend == "openai":
        raise HoneError("hone critique serves --model itself (--backend server), not a server somebody else runs")


class JudgeRejudge:
    """The judge of the original verdicts (a JudgeSetup), built once, judging each batch of rewrites live. Its
    `fingerprint` (the judge stage's: spec, template settings, sandbox) goes into the critique's, so another
    judge never reuses these verdicts."""

    def __init__(self, setup: JudgeSetup, cache_dir: str | os.PathLike):
        from hone.judge.run import JudgeStageConfig

        self.judge = setup.make(cache_dir)
        self.fingerprint = JudgeStageConfig(judge=setup).fingerprint()

    def __call__(self, items: list[tuple[Task, Generation]]) -> list[Verdict]:
        from hone.judge import judge_all

        return judge_all(self.judge, items)


def rejudge_with(setup: JudgeSetup, tasks_path: str | os.PathLike, cache_dir: str | os.PathLike) -> JudgeRejudge:
    """The rejudge of a critique stage; code rewrites are run, so the sandbox is checked first."""
    if setup.spec.verifiers:
        from hone.grade.sandbox import require_for

        require_for(read_tasks(tasks_path), setup.sandbox)
    return JudgeRejudge(setup, cache_dir)


def run_critique(config: CritiqueStageConfig, generator: Generator, rejudge: Rejudge, tasks_path: str | os.PathLike,
                 generations_path: str | os.PathLike, verdicts_path: str | os.PathLike, out_path: str | os.PathLike,
                 *, progress: ProgressFactory | None = None) -> CritiqueResult:
    """Critique and rewrite every failed answer `config.samples` times; write Critique records to `out_path`.

    Work goes in batches of `params.batch_size` attempts: critiques, then rewrites, then live verdicts from
    `rejudge` (which must be the judge of the original verdicts), then the records are appended to
    `<out>.partial`, so a killed run loses at most one batch. Attempts whose generation failed or whose verdict
    is a retryable judge error are written but not final: `<out>.partial` stays and the next run redoes only
    those.
    """
    out = Path(out_path)
    params, samples, mode = config.params, config.samples, config.mode
    inputs = {"tasks": tasks_path, "generations": generations_path, "verdicts": verdicts_path,
              **{k: v for k, v in config.model_ref.items() if v and os.path.exists(v)}}
    judge = getattr(rejudge, "fingerprint", None)  # a JudgeRejudge's; a bare function (a test's rule) has none
    stage = Stage(manifest_for(out), "critique", inputs, {**config.fingerprint(), "model": generator.name,
                                                         **({"judge": judge} if judge else {})})
    if stage.is_done() and out.exists():
        records = read_records(out, Critique, allow_empty=True)
        return CritiqueResult(outputs={"critiques": out}, counts={**stage.manifest()["counts"], "unfinished": 0},
                              skipped=True, critiques=records, report=summarize(records))
    items = failed_answers(tasks_path, generations_path, verdicts_path)
    stage.start([out], restart=config.restart, overwrite=config.overwrite)
    sink = PartialJsonl(out, Critique, key=lambda c: (c.id, c.sample, c.attempt))
    retry_later: list[Critique] = []
    try:
        attempts = []
        for item in items:
            feedback = describe_failure(item.task, item.verdict, reveal_reference=config.reference_guided)
            turn = first_turn(item, feedback, config.reference_guided)
            attempts += [Attempt(item, k, feedback, turn) for k in range(samples)]
        todo = [a for a in attempts if a.key not in sink.done]
        advance = progress(len(todo), len(attempts) - len(todo)) if progress else None
        for start in range(0, len(todo), params.batch_size):
            batch = todo[start : start + params.batch_size]
            critiques = _generate(generator, batch, [a.first_turn for a in batch], params, samples)
            rewrites = _generate(generator, batch, [second_turn(a, c.output) for a, c in zip(batch, critiques)],
                                 params, samples)
            ok = [i for i, (c, r) in enumerate(zip(critiques, rewrites)) if "error" not in (c.finish_reason,
                                                                                           r.finish_reason)]
            verdicts = _rejudge(rejudge, [batch[i] for i in ok], [rewrites[i] for i in ok]) if ok else []
            judged = dict(zip(ok, verdicts))
            for i, a in enumerate(batch):
                record = _record(a, critiques[i], rewrites[i], judged.get(i), generator.name, mode, config.round)
                verdict = judged.get(i)
                # A failed generation or a retryable judge error (API down, budget spent) is not final.
                retry_later.append(record) if verdict is None or is_retryable(verdict) else sink.append(record)
            if advance:
                advance(len(batch))
        order = {a.key: n for n, a in enumerate(attempts)}

        def position(c: Critique) -> int:
            return order.get((c.id, c.sample, c.attempt), len(order))

        records = sink.finish(order=position, unfinished=retry_later)
    finally:
        sink.close()
    counts = {"failed_answers": len(items), "attempts": len(records), "accepted": sum(c.accepted for c in records),
              "errors": sum(c.rewrite_verdict == "error" for c in records)}
    if not retry_later:
        stage.finish({"critiques": out}, counts)
    return CritiqueResult(outputs={"critiques": out}, counts={**counts, "unfinished": len(retry_later)},
                          critiques=records, report=summarize(records))
