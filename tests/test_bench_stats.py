"""Interval, pass@k and paired-comparison statistics against exact enumeration and published values."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from hone.bench.stats import mcnemar_exact_p, paired_compare, pass_at_k, wilson_interval


@pytest.mark.parametrize("k,n,low,high", [
    (0, 10, 0.0, 0.2775),    # Wilson's 0/10 upper bound, as tabulated (e.g. Brown, Cai & DasGupta 2001)
    (5, 10, 0.2366, 0.7634),
    (81, 263, 0.2553, 0.3662),  # Newcombe (1998) single-proportion example
    (10, 10, 0.7225, 1.0),
])
def test_wilson_matches_published_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=5e-4) and hi == pytest.approx(high, abs=5e-4)


def test_wilson_edge_cases():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


@pytest.mark.parametrize("n,c", [(5, 0), (5, 1), (6, 3), (8, 7), (7, 7)])
def test_pass_at_k_equals_the_share_of_k_subsets_with_a_correct_sample(n, c):
    samples = [True] * c + [False] * (n - c)
    for k in range(1, n + 1):
        subsets = list(itertools.combinations(range(n), k))
        exact = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
        assert pass_at_k(n, c, k) == pytest.approx(exact)
    assert pass_at_k(n, c, 1) == pytest.approx(c / n)


def test_pass_at_k_rejects_impossible_arguments():
    for args in ((5, 6, 1), (5, 2, 0), (5, 2, 6)):
        with pytest.raises(ValueError):
            pass_at_k(*args)


def test_mcnemar_exact_is_a_two_sided_binomial_test():
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(5, 5) == 1.0
    assert mcnemar_exact_p(10, 0) == pytest.approx(2 / 1024)
    for b, c in ((3, 9), (9, 3), (1, 12), (20, 31)):
        m = b + c
        tail = sum(math.comb(m, i) for i in range(m + 1) if math.comb(m, i) <= math.comb(m, min(b, c))) / 2 ** m
        assert mcnemar_exact_p(b, c) == pytest.approx(min(1.0, tail))


def test_paired_compare_counts_and_reports_missing_items():
    before = {"a": True, "b": True, "c": False, "d": False, "e": True, "only_before": True}
    after = {"a": True, "b": False, "c": True, "d": False, "e": True, "only_after": False}
    r = paired_compare(before, after)
    assert r["n"] == 5 and r["only_before"] == 1 and r["only_after"] == 1
    assert (r["both_correct"], r["improved"], r["regressed"], r["both_wrong"]) == (2, 1, 1, 1)
    assert r["before_accuracy"] == r["after_accuracy"] == 0.6 and r["difference"] == 0
    assert r["ci95"][0] < 0 < r["ci95"][1] and r["mcnemar_p"] == 1.0


def test_swapping_before_and_after_mirrors_the_interval():
    rng = random.Random(3)
    before = {str(i): rng.random() < 0.5 for i in range(60)}
    after = {k: (v if rng.random() < 0.8 else not v) for k, v in before.items()}
    r, s = paired_compare(before, after), paired_compare(after, before)
    assert r["difference"] == pytest.approx(-s["difference"])
    assert r["ci95"][0] == pytest.approx(-s["ci95"][1]) and r["ci95"][1] == pytest.approx(-s["ci95"][0])


def test_a_clear_regression_is_significant_and_its_interval_excludes_zero():
    before = {str(i): True for i in range(100)}
    after = {k: int(k) >= 20 for k in before}  # 20 items lost, none gained
    r = paired_compare(before, after)
    assert r["difference"] == pytest.approx(-0.2) and r["regressed"] == 20
    assert r["ci95"][1] < 0 and r["mcnemar_p"] < 1e-5


def test_the_95_percent_interval_covers_the_true_difference_about_95_percent_of_the_time():
    rng = random.Random(0)
    n, trials, covered = 150, 600, 0
    # Correlated pairs: P(both)=0.5, P(after only)=0.15, P(before only)=0.08, P(neither)=0.27 -> true diff 0.07.
    cells = [(True, True)] * 50 + [(False, True)] * 15 + [(True, False)] * 8 + [(False, False)] * 27
    for _ in range(trials):
        draw = [rng.choice(cells) for _ in range(n)]
        r = paired_compare({str(i): b for i, (b, _) in enumerate(draw)}, {str(i): a for i, (_, a) in enumerate(draw)})
        covered += r["ci95"][0] <= 0.07 <= r["ci95"][1]
    assert 0.92 <= covered / trials <= 0.985
