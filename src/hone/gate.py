"""The promotion gate: a candidate replaces the promoted model only if no held-out suite regressed.

Both models are compared on the same held-out items, paired (McNemar exact test and a CI of the paired
difference), so a "gain" cannot come from a different sample of items.
"""

from __future__ import annotations

from typing import Any


def decide(before: dict[str, dict[str, bool]], after: dict[str, dict[str, bool]], tolerance: float,
           require_gain: bool = False) -> dict[str, Any]:
    """Compare per-suite correctness maps (item id -> correct); return the decision with its reasons.

    A suite regressed when the candidate's accuracy is lower by more than `tolerance` (a fraction).
    """
    from hone.bench.stats import paired_compare
    from hone.errors import HoneError

    suites: dict[str, Any] = {}
    regressed, improved = [], []
    for name in sorted(before):
        if name not in after:
            raise HoneError(f"gate: the candidate was not benchmarked on suite {name!r}")
        if set(before[name]) != set(after[name]):
            raise HoneError(f"gate: suite {name!r} was benchmarked on different items before and after; "
                            "a paired comparison needs the same items")
        cmp = paired_compare(before[name], after[name])
        suites[name] = cmp
        if cmp["difference"] < -tolerance:
            regressed.append(f"{name} {100 * cmp['difference']:+.1f} points (tolerance {100 * tolerance:.1f})")
        elif cmp["difference"] > 0:
            improved.append(f"{name} {100 * cmp['difference']:+.1f} points (McNemar p={cmp['mcnemar_p']:.3g})")
    if regressed:
        promoted, reason = False, "not promoted: regressed on " + "; ".join(regressed)
    elif require_gain and not improved:
        promoted, reason = False, "not promoted: no suite improved (require_gain)"
    else:
        promoted = True
        reason = "promoted: " + ("; ".join(improved) if improved else "no suite regressed beyond the tolerance")
    return {"promoted": promoted, "reason": reason, "suites": suites, "tolerance": tolerance}
