"""The promotion gate: a candidate replaces the promoted model only if no held-out suite regressed.

Both models are compared on the same held-out items, paired (McNemar exact test and a CI of the paired
difference), so a "gain" cannot come from a different sample of items. Two guards against what online RL
breaks without showing it on the trained suite: guard suites (held-out suites other than the trained ones, e.g.
the MMLU sample) with their own tolerance, which never count as the gain; and the stop rate (the share of answers
that end their turn instead of running into max_new_tokens): a model that forgot how to stop is not promoted.
"""

from __future__ import annotations

from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict

from hone.bench.stats import paired_compare

Correct = dict[str, dict[str, bool]]  # suite -> item id -> correct


def stop_rate_drops(before: Mapping[str, float | None], after: Mapping[str, float | None],
                    tolerance: float) -> list[str]:
    """Suites whose stop rate fell by more than `tolerance` (a fraction), as the gate's reasons."""
    return [f"{name} stop rate {100 * before[name]:.1f}% -> {100 * after[name]:.1f}% (tolerance "
            f"{100 * tolerance:.1f} points)"
            for name in sorted(before)
            if before[name] is not None and after.get(name) is not None and after[name] < before[name] - tolerance]


def decide(before: dict[str, dict[str, bool]], after: dict[str, dict[str, bool]], tolerance: float,
           require_gain: bool = False, *, trained: set[str] | None = None, guard_tolerance: float | None = None,
           stop_rates: tuple[Mapping[str, float | None], Mapping[str, float | None]] | None = None,
           stop_tolerance: float = 0.0) -> dict[str, Any]:
    """Compare per-suite correctness maps (item id -> correct); return the decision with its reasons.

    A suite regressed when the candidate's accuracy is lower by more than `tolerance` (a fraction). With
    `trained` (the suites of the trained task family), every other suite is a guard: it regressed past
    `guard_tolerance` (default `tolerance`), and only a trained suite's gain satisfies `require_gain`.
    `stop_rates` (before, after; suite -> rate, `hone.bench.summary.stop_rate`) refuses a candidate whose stop
    rate fell by more than `stop_tolerance` on any suite.
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
        guard = trained is not None and name not in trained
        allowed = guard_tolerance if guard and guard_tolerance is not None else tolerance
        if cmp["difference"] < -allowed:
            regressed.append(f"{'guard suite ' if guard else ''}{name} {100 * cmp['difference']:+.1f} points "
                             f"(tolerance {100 * allowed:.1f})")
        elif cmp["difference"] > 0 and not guard:
            improved.append(f"{name} {100 * cmp['difference']:+.1f} points (McNemar p={cmp['mcnemar_p']:.3g})")
    stopped_less = stop_rate_drops(*stop_rates, stop_tolerance) if stop_rates is not None else []
    if regressed or stopped_less:
        promoted = False
        reason = "not promoted: " + "; ".join(
            (["regressed on " + "; ".join(regressed)] if regressed else [])
            + (["stops its answers less often: " + "; ".join(stopped_less)] if stopped_less else []))
    elif require_gain and not improved:
        promoted, reason = False, "not promoted: no suite improved (require_gain)"
    else:
        promoted = True
        reason = "promoted: " + ("; ".join(improved) if improved else "no suite regressed beyond the tolerance")
    decision = {"promoted": promoted, "reason": reason, "suites": suites, "tolerance": tolerance}
    if trained is not None:
        decision["guards"] = {"suites": sorted(set(before) - trained), "tolerance": guard_tolerance
                              if guard_tolerance is not None else tolerance}
    if stop_rates is not None:
        decision["stop_rates"] = {"before": dict(stop_rates[0]), "after": dict(stop_rates[1]),
                                  "tolerance": stop_tolerance}
    return decision


class GateDecision(BaseModel):
    """gate.json: whether the candidate was promoted, why, the paired comparison per suite, the tolerance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    promoted: bool
    reason: str
    suites: dict[str, dict[str, Any]]
    tolerance: float
    guards: dict[str, Any] | None = None  # the guard suites and their tolerance, where the trained suites are known
    stop_rates: dict[str, Any] | None = None  # before / after per suite and the tolerance, where the gate checked them


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
