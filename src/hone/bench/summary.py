"""Turn verdicts into the numbers a benchmark reports: accuracy with a 95% CI, pass@k, win/tie/loss.

An `error` verdict (a failed generation, a test the sandbox could not run) is not a pass: accuracy is
pass / all graded answers, and errors are counted separately so they cannot hide.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable

from hone.bench.stats import paired_compare, pass_at_k, wilson_interval
from hone.records import Generation, Task, Verdict

PASS_AT = (1, 5, 10, 20, 50, 100)


def _by_task(verdicts: Iterable[Verdict]) -> dict[str, list[Verdict]]:
    out: dict[str, list[Verdict]] = defaultdict(list)
    for v in verdicts:
        out[v.id].append(v)
    return out


def accuracy_block(tasks: list[Task], verdicts: list[Verdict]) -> dict[str, Any]:
    """Counts, accuracy and its 95% CI (Wilson with one sample per task, else normal over task means), pass@k."""
    by_task = _by_task(verdicts)
    graded = [t for t in tasks if t.id in by_task]
    counts = {k: sum(v.verdict == k for v in verdicts) for k in ("pass", "fail", "error")}
    timeouts = sum(v.evidence.get("outcome") == "timeout" for v in verdicts)
    block: dict[str, Any] = {"tasks": len(tasks), "graded_tasks": len(graded), "answers": len(verdicts),
                             **counts, "timeouts": timeouts}
    if not graded:
        return {**block, "accuracy": None, "ci95": None}
    samples = {len(by_task[t.id]) for t in graded}
    rates = [sum(v.verdict == "pass" for v in by_task[t.id]) / len(by_task[t.id]) for t in graded]
    accuracy = sum(rates) / len(rates)
    if samples == {1}:
        ci = wilson_interval(counts["pass"], len(verdicts))
        method = "wilson"
    else:
        sd = math.sqrt(sum((r - accuracy) ** 2 for r in rates) / max(1, len(rates) - 1))
        half = 1.96 * sd / math.sqrt(len(rates))
        ci, method = (max(0.0, accuracy - half), min(1.0, accuracy + half)), "normal over task means"
    block.update(accuracy=accuracy, ci95=list(ci), ci_method=method)
    n_min = min(samples)
    if n_min > 1:
        block["pass_at_k"] = {
            str(k): sum(pass_at_k(len(by_task[t.id]), sum(v.verdict == "pass" for v in by_task[t.id]), k)
                        for t in graded) / len(graded)
            for k in PASS_AT if k <= n_min
        }
    return block


def stop_rate(generations: list[Generation]) -> float | None:
    """Share of generated answers that ended their turn; None when no answer says (loglik scoring, errors, records
    of other tools)."""
    ended = [g.finish_reason == "stop" for g in generations
             if g.finish_reason in ("stop", "length") and "loglik" not in g.params]
    return sum(ended) / len(ended) if ended else None


def by_category(tasks: list[Task], verdicts: list[Verdict], default: str) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Task]] = defaultdict(list)
    for t in tasks:
        if t.kind != "open":
            groups[str(t.meta.get("category") or default)].append(t)
    by_task = _by_task(verdicts)
    return {c: accuracy_block(ts, [v for t in ts for v in by_task.get(t.id, [])]) for c, ts in sorted(groups.items())}


def ground_truth_comparison(ours: list[Verdict], theirs: list[Verdict]) -> dict[str, Any]:
    """Win / tie / loss on tasks with ground truth, from correctness alone (sample 0 of each side).

    Both right or both wrong is a tie. A task where either side is an `error` is not compared (listed).
    """
    mine = {v.id: v for v in ours if v.sample == 0}
    other = {v.id: v for v in theirs if v.sample == 0}
    result = {"win": 0, "tie": 0, "loss": 0, "not_compared": [], "missing_in_reference": []}
    before: dict[str, bool] = {}
    after: dict[str, bool] = {}
    for tid, v in mine.items():
        r = other.get(tid)
        if r is None:
            result["missing_in_reference"].append(tid)
            continue
        if v.verdict not in ("pass", "fail") or r.verdict not in ("pass", "fail"):
            result["not_compared"].append({"id": tid, "ours": v.verdict, "reference": r.verdict})
            continue
        a, b = v.verdict == "pass", r.verdict == "pass"
        result["win" if a and not b else "loss" if b and not a else "tie"] += 1
        before[tid], after[tid] = b, a
    result["paired"] = paired_compare(before, after)
    return result
