"""Statistics that keep benchmark numbers honest: intervals, pass@k, and paired before/after comparisons.

Pure Python (math.comb for exact binomials), so the numbers do not depend on a SciPy version.
"""

from __future__ import annotations

import math
from typing import Any


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (95% by default); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"wilson_interval: need 0 <= k <= n, got k={k}, n={n}")
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k), for c correct among n samples."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k: need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of b vs c discordant pairs at p = 1/2."""
    m = b + c
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(min(b, c) + 1)) / 2 ** m
    return min(1.0, 2 * tail)


def paired_difference_ci(both: int, only_after: int, only_before: int, neither: int,
                         z: float = 1.96) -> tuple[float, float]:
    """CI of p_after - p_before on paired data: Newcombe's hybrid score interval (1998, method 10).

    Better behaved than the Wald interval at the small discordant counts a regression gate sees.
    """
    n = both + only_after + only_before + neither
    if n == 0:
        return -1.0, 1.0
    p1, p2 = (both + only_after) / n, (both + only_before) / n
    l1, u1 = wilson_interval(both + only_after, n, z)
    l2, u2 = wilson_interval(both + only_before, n, z)
    denominator = (both + only_after) * (only_before + neither) * (both + only_before) * (only_after + neither)
    phi = 0.0 if denominator == 0 else (both * neither - only_after * only_before) / math.sqrt(denominator)
    d = p1 - p2
    lower = d - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    upper = d + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, lower), min(1.0, upper)


def paired_compare(before: dict[str, bool], after: dict[str, bool]) -> dict[str, Any]:
    """Compare correctness on the same items before and after a change.

    Only items present in both count (`n`); the ones missing on either side are reported, never guessed.
    Returns accuracies, their difference (after - before) with a 95% CI, the discordant counts
    (`improved`: wrong before, right after; `regressed`: the reverse) and the exact McNemar p-value.
    """
    common = sorted(set(before) & set(after))
    both = sum(1 for i in common if before[i] and after[i])
    improved = sum(1 for i in common if after[i] and not before[i])
    regressed = sum(1 for i in common if before[i] and not after[i])
    neither = len(common) - both - improved - regressed
    n = len(common)
    low, high = paired_difference_ci(both, improved, regressed, neither)
    return {
        "n": n,
        "before_accuracy": (both + regressed) / n if n else None,
        "after_accuracy": (both + improved) / n if n else None,
        "difference": (improved - regressed) / n if n else None,
        "ci95": [low, high],
        "improved": improved,
        "regressed": regressed,
        "both_correct": both,
        "both_wrong": neither,
        "mcnemar_p": mcnemar_exact_p(improved, regressed),
        "only_before": len(set(before) - set(after)),
        "only_after": len(set(after) - set(before)),
    }
