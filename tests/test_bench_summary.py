"""From verdicts to reported numbers: accuracy, intervals, pass@k over samples, win/tie/loss."""

from __future__ import annotations

import pytest

from hone.bench.stats import pass_at_k, wilson_interval
from hone.bench.summary import accuracy_block, by_category, ground_truth_comparison
from hone.records import Task, Verdict


def _tasks(n: int) -> list[Task]:
    return [Task(id=f"t{i}", kind="math", prompt=f"q{i}", reference="1",
                 meta={"category": "even" if i % 2 == 0 else "odd"}) for i in range(n)]


def _v(tid: str, verdict: str, sample: int = 0, **evidence) -> Verdict:
    return Verdict(id=tid, sample=sample, judge="verifier:math@1", verdict=verdict, evidence=evidence)


def test_one_sample_per_task_uses_wilson_and_counts_errors_as_not_passing():
    tasks = _tasks(5)
    verdicts = [_v("t0", "pass"), _v("t1", "pass"), _v("t2", "fail"), _v("t3", "error"),
                _v("t4", "fail", outcome="timeout")]
    block = accuracy_block(tasks, verdicts)
    assert (block["pass"], block["fail"], block["error"], block["timeouts"]) == (2, 2, 1, 1)
    assert block["accuracy"] == pytest.approx(0.4)
    assert block["ci95"] == list(wilson_interval(2, 5)) and block["ci_method"] == "wilson"
    assert "pass_at_k" not in block


def test_several_samples_report_unbiased_pass_at_k_and_a_task_level_interval():
    tasks = _tasks(4)
    correct = {"t0": 0, "t1": 1, "t2": 3, "t3": 5}
    verdicts = [_v(t, "pass" if s < c else "fail", s) for t, c in correct.items() for s in range(5)]
    block = accuracy_block(tasks, verdicts)
    assert block["accuracy"] == pytest.approx(sum(correct.values()) / 20)
    assert block["ci_method"] == "normal over task means"
    assert block["ci95"][0] < block["accuracy"] < block["ci95"][1]
    assert set(block["pass_at_k"]) == {"1", "5"}
    assert block["pass_at_k"]["5"] == pytest.approx(sum(pass_at_k(5, c, 5) for c in correct.values()) / 4)
    assert block["pass_at_k"]["1"] == pytest.approx(block["accuracy"])


def test_categories_are_reported_separately():
    tasks = _tasks(4)
    cats = by_category(tasks, [_v("t0", "pass"), _v("t1", "fail"), _v("t2", "pass"), _v("t3", "pass")], "suite")
    assert cats["even"]["accuracy"] == 1.0 and cats["odd"]["accuracy"] == pytest.approx(0.5)


def test_win_tie_loss_follow_from_correctness():
    ours = [_v("a", "pass"), _v("b", "pass"), _v("c", "fail"), _v("d", "fail"), _v("e", "error"), _v("f", "pass"),
            _v("a", "fail", sample=1)]  # only sample 0 is compared
    ref = [_v("a", "fail"), _v("b", "pass"), _v("c", "fail"), _v("d", "pass"), _v("e", "pass")]
    r = ground_truth_comparison(ours, ref)
    assert (r["win"], r["tie"], r["loss"]) == (1, 2, 1)
    assert r["not_compared"] == [{"id": "e", "ours": "error", "reference": "pass"}]
    assert r["missing_in_reference"] == ["f"]
    assert r["paired"]["n"] == 4 and r["paired"]["improved"] == 1 and r["paired"]["regressed"] == 1
