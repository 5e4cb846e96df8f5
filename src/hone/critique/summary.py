"""What a critique run achieved: acceptance rate, and the paired uplift on the items that had failed.

Every critiqued item failed before (that is why it was critiqued), so the paired before/after difference on
those items is the pass rate of their rewrites. It is measured on each item's first attempt, so drawing more
samples cannot inflate it; "fixed by any attempt" is reported beside it and named as such.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Sequence

from hone.records import Critique

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (good at 0 and n, unlike the normal approximation)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class CritiqueSummary:
    mode: str
    failed_items: int
    attempts: int
    accepted: int
    errors: int
    fixed_first_attempt: int
    fixed_any_attempt: int
    uplift_ci95: tuple[float, float]

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.attempts if self.attempts else 0.0

    @property
    def uplift(self) -> float:
        """Pass rate after minus before (0: all had failed) on the failed items, first attempt each."""
        return self.fixed_first_attempt / self.failed_items if self.failed_items else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "acceptance_rate": self.acceptance_rate, "uplift": self.uplift}


def summarize(critiques: Sequence[Critique]) -> CritiqueSummary:
    modes = {c.mode for c in critiques}
    by_item: dict[tuple[str, int], list[Critique]] = defaultdict(list)
    for c in critiques:
        by_item[(c.id, c.sample)].append(c)
    first = [min(cs, key=lambda c: c.attempt) for cs in by_item.values()]
    fixed_first = sum(c.rewrite_verdict == "pass" for c in first)
    return CritiqueSummary(
        mode=modes.pop() if len(modes) == 1 else "mixed" if modes else "self-critique",
        failed_items=len(by_item),
        attempts=len(critiques),
        accepted=sum(c.accepted for c in critiques),
        errors=sum(c.rewrite_verdict == "error" for c in critiques),
        fixed_first_attempt=fixed_first,
        fixed_any_attempt=sum(any(c.accepted for c in cs) for cs in by_item.values()),
        uplift_ci95=wilson_interval(fixed_first, len(by_item)),
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
        f"(+{s.fixed_first_attempt}/{s.failed_items}, 95% CI {lo:+.1%} to {hi:+.1%})",
    ]
    if s.attempts > s.failed_items:
        lines.append(f"fixed by any of the attempts: {s.fixed_any_attempt}/{s.failed_items}")
    return "\n".join(lines)
