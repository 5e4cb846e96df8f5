"""Pairwise judging, run in both orders so position bias cannot decide the outcome.

Each pair is shown A-first and B-first. Outcomes are read from A's point of view; when the two orders agree,
that is the verdict; when they disagree the pair is a tie, marked `consistent: false` so reports count those
ties separately from real ones.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from hone.evidence import PairwiseEvidence
from hone.judge.base import content_sha256
from hone.records import Generation, Task, Verdict

# The winner named by the judge, read from A's side: when A is shown first, and when A is shown second.
A_FIRST = {"A": "win", "B": "loss", "tie": "tie"}
A_SECOND = {"A": "loss", "B": "win", "tie": "tie"}
SCORE = {"win": 1.0, "tie": 0.5, "loss": 0.0}

OneOrder = Callable[[Task, str, str], Awaitable[tuple[str, str, dict[str, Any]]]]


def combine(winner_a_first: str, winner_a_second: str) -> tuple[str, bool]:
    """(outcome for A, whether both orders agreed)."""
    first, second = A_FIRST[winner_a_first], A_SECOND[winner_a_second]
    return (first, True) if first == second else ("tie", False)


async def compare_both_orders(one_order: OneOrder, task: Task, a: Generation, b: Generation, judge: str) -> Verdict:
    """`one_order(task, shown_first, shown_second)` returns (winner "A"/"B"/"tie", reason, evidence)."""
    (w1, r1, e1), (w2, r2, e2) = await asyncio.gather(one_order(task, a.output, b.output),
                                                      one_order(task, b.output, a.output))
    outcome, consistent = combine(w1, w2)
    reason = r1 if consistent else (f"order-inconsistent, counted as a tie: shown first, A was judged "
                                    f"{A_FIRST[w1]} ({r1}); shown second, A was judged {A_SECOND[w2]} ({r2})")
    return Verdict(
        id=a.id, sample=a.sample, judge=judge, verdict=outcome, score=SCORE[outcome], reason=reason[:1000],
        evidence=PairwiseEvidence(judged_sha256=content_sha256(a), b_sha256=content_sha256(b), b_model=b.model,
                                  b_sample=b.sample, a_first=A_FIRST[w1], a_second=A_SECOND[w2],
                                  consistent=consistent, a_first_call=e1, a_second_call=e2),
    )
