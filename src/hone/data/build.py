"""Training rows built only from verified improvements, each keeping its lineage.

- rewrites: SFT rows from critiques whose original failed and whose rewrite passed the live re-judge;
- samples: SFT rows from the model's own generations that a judge passed (rejection sampling);
- DPO pairs: chosen = the accepted rewrite, rejected = the original failed answer;
- bootstrap: forward (task -> reference) and reverse (reference -> task) rows from the failed items.
A tie, a pass that was never a failure, or an error is never turned into a "fix".
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from typing import Any, Iterable, Mapping, Sequence

from hone.critique.run import judged_other_answer
from hone.critique.prompts import PROMPT_VERSION, reverse_request
from hone.errors import HoneError
from hone.records import Critique, Generation, Message, PreferencePair, SFTExample, Task, Verdict

Built = tuple[list, Counter]  # (rows, why other items were skipped)


def _task(tasks: Mapping[str, Task], task_id: str, where: str) -> Task:
    if task_id not in tasks:
        raise HoneError(f"{where}: item {task_id!r} is not in the task file")
    return tasks[task_id]


def _row_id(source: str, round: int | None, *parts: Any) -> str:
    return "/".join(([f"r{round}"] if round is not None else []) + [source, *map(str, parts)])


def _answer(task: Task, text: str) -> list[Message]:
    return [Message(**m) for m in task.chat()] + [Message(role="assistant", content=text)]


def is_fix(c: Critique) -> bool:
    """Only a failed answer whose rewrite passed the live judge counts as an improvement."""
    return c.original_verdict == "fail" and c.rewrite_verdict == "pass" and c.accepted


def _critique_lineage(c: Critique) -> dict[str, Any]:
    return {"task_id": c.id, "sample": c.sample, "attempt": c.attempt, "round": c.round, "model": c.model,
            "judge": c.judge, "mode": c.mode}


def build_sft(tasks: Mapping[str, Task], critiques: Iterable[Critique]) -> Built:
    """SFT rows (task -> accepted rewrite) from verified fixes."""
    rows, skipped = [], Counter()
    for c in critiques:
        if not is_fix(c):
            skipped[f"not a fail->pass fix ({c.original_verdict}->{c.rewrite_verdict})"] += 1
            continue
        task = _task(tasks, c.id, "critiques")
        rows.append(SFTExample(id=_row_id("rewrite", c.round, c.id, c.sample, c.attempt),
                               messages=_answer(task, c.rewrite), source="rewrite", lineage=_critique_lineage(c)))
    return rows, skipped


def build_dpo(tasks: Mapping[str, Task], critiques: Iterable[Critique]) -> Built:
    """Preference pairs: the accepted rewrite over the original failed answer, same prompt."""
    rows, skipped = [], Counter()
    for c in critiques:
        if not is_fix(c):
            skipped[f"not a fail->pass fix ({c.original_verdict}->{c.rewrite_verdict})"] += 1
            continue
        if c.rewrite.strip() == c.original.strip():
            skipped["rewrite identical to the original"] += 1
            continue
        task = _task(tasks, c.id, "critiques")
        rows.append(PreferencePair(id=_row_id("dpo", c.round, c.id, c.sample, c.attempt),
                                   prompt=[Message(**m) for m in task.chat()], chosen=c.rewrite, rejected=c.original,
                                   lineage=_critique_lineage(c)))
    return rows, skipped


def _verdicts_by_key(tasks: Mapping[str, Task], verdicts: Iterable[Verdict]) -> dict[tuple[str, int], Verdict]:
    out: dict[tuple[str, int], Verdict] = {}
    for v in verdicts:
        _task(tasks, v.id, "verdicts")
        if (v.id, v.sample) in out:
            raise HoneError(f"verdicts: two verdicts for item {v.id!r} sample {v.sample}")
        out[(v.id, v.sample)] = v
    return out


def build_unverified(tasks: Mapping[str, Task], generations: Sequence[Generation], *, round: int | None = None,
                     max_per_task: int | None = None) -> Built:
    """The control arm's rows: the model's own finished samples, kept without looking at any verdict, so the
    difference between the arms is what verification buys."""
    by_task: dict[str, list[Generation]] = defaultdict(list)
    skipped: Counter = Counter()
    for g in generations:
        if g.finish_reason in ("stop", None):
            by_task[g.id].append(g)
        else:
            skipped[f"answer {g.finish_reason}"] += 1
    rows = []
    for task_id in sorted(by_task):
        for g in by_task[task_id][: max_per_task or None]:
            rows.append(SFTExample(
                id=f"r{round}/unverified/{g.id}/{g.sample}", source="sample",
                messages=[*(Message(**m) for m in tasks[g.id].chat()), Message(role="assistant", content=g.output)],
                lineage={"task_id": g.id, "sample": g.sample, "round": round, "model": g.model, "judge": None,
                         "mode": "unverified control"}))
    return rows, skipped


def build_sft_from_samples(tasks: Mapping[str, Task], generations: Sequence[Generation],
                           verdicts: Iterable[Verdict], *, round: int | None = None,
                           max_per_task: int | None = None, seed: int = 0) -> Built:
    """SFT rows from generations the judge passed; `max_per_task` (seeded pick) keeps easy tasks from dominating."""
    by_key = _verdicts_by_key(tasks, verdicts)
    generated = {(g.id, g.sample): g for g in generations}
    for key, v in by_key.items():
        if v.verdict == "pass" and key not in generated:
            raise HoneError(f"verdicts: pass for {key[0]!r} sample {key[1]} has no generation")
    per_task: dict[str, list[SFTExample]] = defaultdict(list)
    skipped = Counter()
    for g in generations:
        v = by_key.get((g.id, g.sample))
        if v is None or v.verdict != "pass":
            skipped[f"verdict {v.verdict if v else 'missing'}"] += 1
            continue
        if judged_other_answer(v, g):
            raise HoneError(f"verdicts: the verdict for {g.id!r} sample {g.sample} judged another answer than the "
                            "generation (stale verdicts? judge again)")
        if g.finish_reason == "length":
            skipped["answer did not end (cut at max_new_tokens)"] += 1
            continue
        lineage = {"task_id": g.id, "sample": g.sample, "round": round, "model": g.model, "judge": v.judge,
                   "mode": "rejection-sampling"}
        per_task[g.id].append(SFTExample(id=_row_id("sample", round, g.id, g.sample),
                                         messages=_answer(tasks[g.id], g.output), source="sample", lineage=lineage))
    rng = random.Random(seed)
    rows = []
    for task_id in sorted(per_task):
        kept = per_task[task_id]
        if max_per_task is not None and len(kept) > max_per_task:
            skipped["over max_per_task"] += len(kept) - max_per_task
            kept = sorted(rng.sample(kept, max_per_task), key=lambda r: r.lineage["sample"])
        rows += kept
    return rows, skipped


def build_bootstrap(tasks: Mapping[str, Task], verdicts: Iterable[Verdict], *, round: int | None = None) -> Built:
    """Forward (task -> reference) and reverse (reference -> task) rows for the items that failed."""
    failed: dict[str, str] = {}
    for v in verdicts:
        _task(tasks, v.id, "verdicts")
        if v.verdict == "fail":
            failed.setdefault(v.id, v.judge)
    rows, skipped = [], Counter()
    for task_id, judge in failed.items():
        task = tasks[task_id]
        if not (task.reference or "").strip():
            skipped["failed item without a reference"] += 1
            continue
        lineage = {"task_id": task_id, "round": round, "model": None, "judge": judge, "mode": "bootstrap",
                   "prompts": PROMPT_VERSION}
        rows.append(SFTExample(id=_row_id("forward", round, task_id), messages=_answer(task, task.reference),
                               source="forward", lineage={**lineage, "direction": "forward"}))
        question = task.chat()[-1]["content"]
        rows.append(SFTExample(id=_row_id("reverse", round, task_id),
                               messages=[Message(role="user", content=reverse_request(task.reference)),
                                         Message(role="assistant", content=question)],
                               source="reverse", lineage={**lineage, "direction": "reverse"}))
    return rows, skipped
