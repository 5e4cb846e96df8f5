"""The second grader (a strict reading) and the scorer gap it reports next to the verifiers (issue 20)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hone.errors import HoneError
from hone.generate.base import GenParams
from hone.grade import grader_versions, verify
from hone.grade.gap import rising_gap, scorer_gap
from hone.grade.strict import strict_reading
from hone.importers import import_tasks
from hone.judge.factory import JudgeSetup
from hone.judge.run import JudgeStageConfig, run_judge
from hone.records import Generation, Task, write_records


def _gen(task: Task, output: str, sample: int = 0) -> Generation:
    return Generation(id=task.id, sample=sample, model="m", output=output, finish_reason="stop")


@pytest.fixture(scope="module")
def gsm8k(shared_data) -> list[Task]:
    return import_tasks(shared_data / "gsm8k_test_part1.jsonl", "gsm8k", limit=20)


@pytest.fixture(scope="module")
def mmlu(shared_data) -> list[Task]:
    return import_tasks(shared_data / "mmlu_sample.jsonl", "mmlu", limit=5)


def _gold(task: Task) -> str:
    return task.reference.rsplit("####", 1)[-1].strip()


def test_strict_math_reads_one_number_after_the_marker_or_at_the_end(gsm8k):
    t = gsm8k[0]
    gold = _gold(t)
    for honest in (gold, f"#### {gold}", f"The answer is {gold}.", f"so in all 3 + 4 = {gold}", f"\\boxed{{{gold}}}",
                   f"Answer: **{gold}**"):
        assert strict_reading(t, _gen(t, honest)) is True, honest
    for wrong in (f"{gold} apples", f"The answer is {gold}1.", "#### 7", "", f"#### {gold}\nThe answer is 3."):
        assert strict_reading(t, _gen(t, wrong)) is False, wrong


def test_strict_choice_reads_the_leading_letter_of_the_answer_region(mmlu):
    t = mmlu[0]
    gold = t.reference
    other = "A" if gold != "A" else "B"
    for honest in (gold, f"({gold})", f"**{gold}**", f"The answer is ({gold}).", f"{gold}. {t.options[ord(gold) - 65]}"):
        assert strict_reading(t, _gen(t, honest)) is True, honest
    for wrong in (other, f"The answer is {other}", "none of them", f"Answer: {other}, {gold}"):
        assert strict_reading(t, _gen(t, wrong)) is False, wrong


def test_no_strict_reading_for_code_open_or_non_numeric_references():
    code = Task(id="c", kind="code", prompt="p", tests="assert True", entry_point="f")
    frac = Task(id="f", kind="math", prompt="p", reference="\\frac{1}{2}")
    assert strict_reading(code, _gen(code, "def f(): pass")) is None
    assert strict_reading(frac, _gen(frac, "1/2")) is None


def test_the_gap_counts_disagreements_both_ways_with_examples(gsm8k):
    tasks = {t.id: t for t in gsm8k[:4]}
    a, b, c, d = gsm8k[:4]
    gens = [_gen(a, f"#### {_gold(a)}"),  # both pass
            _gen(b, f"It is {_gold(b)} apples"),  # the verifier passes, strict (no number at the end) fails
            _gen(c, "#### 1"),  # both fail
            _gen(d, f"It is 3 or {_gold(d)}")]  # hedged: the verifier fails it, strict reads the last number
    verdicts = [verify(tasks[g.id], g) for g in gens]
    assert [v.verdict for v in verdicts] == ["pass", "pass", "fail", "fail"]
    gap = scorer_gap(tasks, gens, verdicts)
    assert (gap.answers, gap.disagree, gap.verifier_only, gap.strict_only) == (4, 2, 1, 1)
    assert gap.share == 0.5 and [e.id for e in gap.examples] == [b.id, d.id]
    assert rising_gap(scorer_gap(tasks, gens[:1], verdicts[:1]), gap)
    assert not rising_gap(gap, gap) and not rising_gap(None, gap)


def test_bench_reports_the_gap_per_suite_and_its_examples_in_the_failures_file(gsm8k, tmp_path):
    from hone.bench.run import BenchConfig, run_bench

    suite = tmp_path / "gsm8k.jsonl"
    write_records(suite, gsm8k[:3])

    class Scripted:
        """A generator whose answers are fixed: one honest, one with units (strict fails), one wrong."""

        name = "scripted"

        def generate(self, requests, params, progress=None):
            outputs = {gsm8k[0].id: f"#### {_gold(gsm8k[0])}", gsm8k[1].id: f"{_gold(gsm8k[1])} dollars",
                       gsm8k[2].id: "#### 0"}
            for r in requests:
                yield Generation(id=r.id, sample=0, model="scripted", output=outputs[r.id], finish_reason="stop")
                if progress:
                    progress(1)

    res = run_bench(BenchConfig(), "scripted", [str(suite)], tmp_path / "bench", generator=Scripted())
    gap = res.report.suites["gsm8k"].scorer_gap
    assert (gap.answers, gap.disagree, gap.verifier_only) == (3, 1, 1)
    rows = [json.loads(line) for line in (tmp_path / "bench" / "failures.jsonl").read_text().splitlines()]
    assert [r["outcome"] for r in rows] == ["fail", "scorer gap: verifier pass, strict reading fail"]
    assert res.counts["failures"] == 1
    assert "Scorer gap" in (tmp_path / "bench" / "bench.md").read_text()


def test_a_grader_change_regrades_judged_verdicts_on_resume(gsm8k, tmp_path, monkeypatch):
    """The judge stage with verifiers records the grader versions: a verdict of an older grader is not reused."""
    tasks = tmp_path / "t.jsonl"
    write_records(tasks, gsm8k[:2])
    gens = tmp_path / "g.jsonl"
    write_records(gens, [_gen(t, f"#### {_gold(t)}") for t in gsm8k[:2]])
    out = tmp_path / "v.jsonl"
    config = JudgeStageConfig(judge=JudgeSetup(spec="verifier"))
    assert config.fingerprint()["graders"] == grader_versions()
    run_judge(config, tasks, gens, out)
    assert run_judge(config, tasks, gens, out).skipped
    import hone.grade.math as math_grader

    monkeypatch.setattr(math_grader, "MATH_JUDGE", "verifier:math@999")
    with pytest.raises(HoneError, match=r"graders.math.*pass --restart"):
        run_judge(config, tasks, gens, out)
    assert not run_judge(config.model_copy(update={"restart": True}), tasks, gens, out).skipped


def test_calibrate_and_critique_fingerprints_hold_the_grader_versions():
    from hone.critique.run import CritiqueStageConfig
    from hone.judge.calibrate import CalibrateConfig

    assert CalibrateConfig(judge=JudgeSetup(spec="verifier")).fingerprint()["graders"] == grader_versions()
    assert CritiqueStageConfig(params=GenParams()).fingerprint()["graders"] == grader_versions()


def test_a_loop_round_records_the_gap_of_its_samples_and_the_held_out_suites(demo_run):
    """The demo's rounds carry the scorer gap of their samples (both directions) and of the held-out suite, and the
    report shows the table."""
    from hone.round import read_run

    arms, _, _ = read_run(demo_run)
    record = arms["verified"].rounds[1]
    gap = record.train_prompts.scorer_gap
    assert gap is not None and gap.answers == record.train_prompts.samples - record.train_prompts.errors
    assert gap.disagree == gap.verifier_only + gap.strict_only
    assert all(f.scorer_gap is not None for f in record.suites.values())
    assert "Scorer gap" in (demo_run / "report.md").read_text()


def test_status_flags_a_gap_that_rises_between_rounds():
    from hone.bench.report import SuiteFigures
    from hone.grade.gap import ScorerGap
    from hone.report.status import gap_rows, gap_text
    from hone.round import LoopSummary, RoundRecord
    from hone.sample.run import SampleReport

    def record(r: int, disagree: int) -> RoundRecord:
        gap = ScorerGap(answers=100, disagree=disagree, verifier_only=disagree, share=disagree / 100)
        return RoundRecord(round=r, model="m", promoted=True, reason="", candidate="m",
                           suites={"s": SuiteFigures(accuracy=0.5, ci=[0.4, 0.6], n=10, scorer_gap=0.1)},
                           train_prompts=SampleReport(tasks=10, solved=5, samples=100, errors=0, scorer_gap=gap))

    start = RoundRecord(round=0, model="m", promoted=True, reason="start", suites={})
    summary = LoopSummary(config={}, rounds=[start, record(1, 2), record(2, 3), record(3, 9)])
    assert [row[-1] for row in gap_rows(summary)] == ["", "", "RISING"]
    assert "RISING" in gap_text(0.09, True) and "RISING" not in gap_text(0.03, False)
