"""The promotion gate: a candidate replaces the promoted model only if no held-out suite regressed.

Both models are compared on the same held-out items, paired (McNemar exact test and a CI of the paired
difference), so a "gain" cannot come from a different sample of items.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from hone.bench.stats import paired_compare

Correct = dict[str, dict[str, bool]]  # suite -> item id -> correct


def decide(before: dict[str, dict[str, bool]], after: dict[str, dict[str, bool]], tolerance: float,
           require_gain: bool = False) -> dict[str, Any]:
    """Compare per-suite correctness maps (item id -> correct); return the decision with its reasons.

    A suite regressed when the candidate's accuracy is lower by more than `tolerance` (a fraction).
    """
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


class GateDecision(BaseModel):
    """gate.json: whether the candidate was promoted, why, the paired comparison per suite, the tolerance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    promoted: bool
    reason: str
    suites: dict[str, dict[str, Any]]
    tolerance: float


class Uplift(BaseModel):
    """A candidate against round 0 on one suite, paired: the accuracy difference with its 95% CI, McNemar's p,
    and the discordant items."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    diff: float | None
    ci: tuple[float, float]
    p_value: float
    improved: int
    regressed: int
    n: int


def uplift(first: Correct, now: Correct) -> dict[str, Uplift]:
    """Per suite, the paired uplift of `now` over `first` (the starting model) on the same items."""
    out = {}
    for suite in first:
        c = paired_compare(first[suite], now[suite])
        out[suite] = Uplift(diff=c["difference"], ci=c["ci95"], p_value=c["mcnemar_p"], improved=c["improved"],
                            regressed=c["regressed"], n=c["n"])
    return out


def win_tie_loss(first: Correct, now: Correct,
                 categories: dict[str, dict[str, str]]) -> dict[str, dict[str, dict[str, int]]]:
    """Per suite and category: items `now` gets right and `first` did not (win), the reverse (loss), else tie."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for suite, before in first.items():
        cats: dict[str, dict[str, int]] = {}
        for item, was in before.items():
            is_ = now[suite].get(item, False)
            key = "win" if is_ and not was else "loss" if was and not is_ else "tie"
            cats.setdefault(categories[suite][item], {"win": 0, "tie": 0, "loss": 0})[key] += 1
        out[suite] = cats
    return out
