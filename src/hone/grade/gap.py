"""The scorer gap: on how many answers the verifier and the strict second reading (`hone.grade.strict`) disagree.

A gap near zero says the two graders read the answers alike. A gap that grows round after round on the answers
a loop trains on is the first sign of a model learning its grader's blind spots (it is flagged by
`rising_gap`); the examples show what the disagreement looks like.
"""

from __future__ import annotations

from typing import Iterable

from pydantic import BaseModel, ConfigDict, Field

from hone.grade.strict import STRICT_READER, strict_reading
from hone.records import Generation, Task, Verdict

EXAMPLES = 5
# A round's training gap this many points above the previous round's is flagged as rising.
RISE_POINTS = 2.0


class GapExample(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    sample: int
    verifier: str  # the verifier's verdict: pass / fail
    strict: str  # the strict reading: pass / fail
    output: str  # the answer, cut to 300 characters


class ScorerGap(BaseModel):
    """answers: read by both graders; disagree = verifier_only (the verifier passed what the strict reading
    failed) + strict_only; share = disagree / answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reader: str = STRICT_READER
    answers: int = 0
    disagree: int = 0
    verifier_only: int = 0
    strict_only: int = 0
    share: float | None = None
    examples: list[GapExample] = Field(default_factory=list)


def scorer_gap(tasks: dict[str, Task], generations: Iterable[Generation], verdicts: Iterable[Verdict],
               examples: int = EXAMPLES) -> ScorerGap:
    """The gap over every answer that has a verifier verdict (pass or fail) and a strict reading."""
    by_key = {(g.id, g.sample): g for g in generations}
    answers = verifier_only = strict_only = 0
    shown: list[GapExample] = []
    for v in verdicts:
        g, task = by_key.get((v.id, v.sample)), tasks.get(v.id)
        if g is None or task is None or v.verdict not in ("pass", "fail") or not v.judge.startswith("verifier:"):
            continue
        strict = strict_reading(task, g)
        if strict is None:
            continue
        answers += 1
        verified = v.verdict == "pass"
        if verified == strict:
            continue
        verifier_only += verified
        strict_only += strict
        if len(shown) < examples:
            shown.append(GapExample(id=v.id, sample=v.sample, verifier=v.verdict, strict="pass" if strict else "fail",
                                    output=g.output[:300]))
    disagree = verifier_only + strict_only
    return ScorerGap(answers=answers, disagree=disagree, verifier_only=verifier_only, strict_only=strict_only,
                     share=disagree / answers if answers else None, examples=shown)


def rising_gap(earlier: ScorerGap | None, later: ScorerGap | None, points: float = RISE_POINTS) -> bool:
    """True when the later gap's share is `points` or more above the earlier one's."""
    if earlier is None or later is None or earlier.share is None or later.share is None:
        return False
    return 100 * (later.share - earlier.share) >= points
