"""What a critique run achieved: acceptance rate, and the paired uplift on the items that had failed.

Every critiqued item failed before (that is why it was critiqued); after is whether its rewrite passed the
live re-judge. The paired comparison is `hone.bench.stats.paired_compare`, the one the benchmark and the
promotion gate use, on each item's first attempt, so drawing more samples cannot inflate it; "fixed by any
attempt" is reported beside it and named as such.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from pydantic import BaseModel, ConfigDict, computed_field

from hone.bench.stats import paired_compare
from hone.records import Critique


class CritiqueSummary(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: str
    failed_items: int
    attempts: int
    accepted: int
    errors: int
    fixed_first_attempt: int
    fixed_any_attempt: int
    uplift: float  # pass rate after minus before (0: all had failed), first attempt of each failed item
    uplift_ci95: tuple[float, float]
    mcnemar_p: float

    @computed_field
    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.attempts if self.attempts else 0.0


def summarize(critiques: Sequence[Critique]) -> CritiqueSummary:
    modes = {c.mode for c in critiques}
    by_item: dict[tuple[str, int], list[Critique]] = defaultdict(list)
    for c in critiques:
        by_item[(c.id, c.sample)].append(c)
    first = {f"{k[0]}#{k[1]}": min(cs, key=lambda c: c.attempt) for k, cs in by_item.items()}
    paired = paired_compare({k: False for k in first}, {k: c.rewrite_verdict == "pass" for k, c in first.items()})
    return CritiqueSummary(
        mode=modes.pop() if len(modes) == 1 else "mixed" if modes else "self-critique",
        failed_items=len(by_item),
        attempts=len(critiques),
        accepted=sum(c.accepted for c in critiques),
        errors=sum(c.rewrite_verdict == "error" for c in critiques),
        fixed_first_attempt=paired["improved"],
        fixed_any_attempt=sum(any(c.accepted for c in cs) for cs in by_item.values()),
        uplift=paired["difference"] or 0.0,
        uplift_ci95=tuple(paired["ci95"]),
        mcnemar_p=paired["mcnemar_p"],
    )


def format_summary(s: CritiqueSummary) -> str:
    """A short report; reference-guided runs are called distillation, never self-critique."""
    name = "distillation (rewrites saw the reference)" if s.mode == "distillation" else s.mode
    if not s.failed_items:
        return f"{name}: no failed answers to critique"
    lo, hi = s.uplift_ci95
    lines = [
        f"{name}: {s.failed_items} failed answers, {s.attempts} rewrites, {s.accepted} accepted "
        f"({s.acceptance_rate:.1%} acceptance), {s.errors} errors",
        f"paired uplift on the failed items (first rewrite, live re-judge): 0.0% -> {s.uplift:.1%} "
        f"(+{s.fixed_first_attempt}/{s.failed_items}, 95% CI {lo:+.1%} to {hi:+.1%}, McNemar p={s.mcnemar_p:.3g})",
    ]
    if s.attempts > s.failed_items:
        lines.append(f"fixed by any of the attempts: {s.fixed_any_attempt}/{s.failed_items}")
    return "\n".join(lines)
