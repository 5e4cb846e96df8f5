"""Math grading with math-verify on real GSM8K answers, in the forms models write them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from hone.grade import verify, verify_many
from hone.grade.math import MATH_JUDGE, answer_region, grade_math
from hone.importers import import_tasks
from hone.records import Generation, Task

FORMS = {
    "plain": "{n}",
    "boxed": "Adding everything up gives \\boxed{{{n}}}.",
    "dollar": "So she makes ${c} every day.",
    "commas": "The total comes to {c}.",
    "answer_is": "Step by step: 3 + 4 = 7, and then the rest. The answer is {n}.",
    "units": "{n} dollars",
    "decimal": "{n}.00",
    "sentence": "Working through it carefully, the final amount comes to {n} once every step is counted.",
    "gsm8k_marker": "First 2 * 3 = 6, then the rest.\n#### {n}",
    "latex": "Therefore $x = {n}$.",
    "bold": "**Final answer:** {c}",
}


@pytest.fixture(scope="module")
def gsm8k_tasks(shared_data):
    tasks = import_tasks(shared_data / "gsm8k_test_part1.jsonl", "gsm8k")
    small = tasks[:30]
    large = [t for t in tasks[30:] if int(t.reference) >= 1000][:20]  # thousands separators matter here
    return small + large


def _answers(tasks, offset: int):
    items = []
    for t in tasks:
        n = int(t.reference) + offset
        for s, (name, form) in enumerate(FORMS.items()):
            text = form.format(n=n, c=f"{n:,}")
            items.append((t, Generation(id=t.id, sample=s, model=name, output=text, finish_reason="stop")))
    return items


def test_gold_answers_written_eleven_ways_all_pass(gsm8k_tasks):
    items = _answers(gsm8k_tasks, 0)
    verdicts = verify_many(items, workers=1)
    failed = [(g.model, g.output, v.reason) for (t, g), v in zip(items, verdicts) if v.verdict != "pass"]
    assert not failed, failed[:5]
    assert all(v.judge == MATH_JUDGE and v.score == 1.0 for v in verdicts)


def test_the_same_answers_off_by_one_all_fail(gsm8k_tasks):
    items = _answers(gsm8k_tasks, 1)
    verdicts = verify_many(items, workers=1)
    passed = [(g.model, g.output) for (t, g), v in zip(items, verdicts) if v.verdict != "fail"]
    assert not passed, passed[:5]
    assert all("does not equal" in v.reason for v in verdicts)


def _math(reference: str, output: str) -> Generation:
    return Task(id="q", kind="math", prompt="q", reference=reference), Generation(
        id="q", model="m", output=output, finish_reason="stop")


@pytest.mark.parametrize("reference,output,expected", [
    ("\\frac{3}{4}", "The probability is $\\boxed{\\frac{3}{4}}$.", "pass"),
    ("\\frac{3}{4}", "So the answer is 0.75", "pass"),
    ("\\frac{3}{4}", "So the answer is 3/4.", "pass"),
    ("\\frac{\\sqrt{2}}{2}", "Hence \\boxed{\\frac{\\sqrt{2}}{2}}", "pass"),
    ("\\frac{\\sqrt{2}}{2}", "Hence \\boxed{\\frac{\\sqrt{3}}{2}}", "fail"),
    ("25\\%", "The discount is 25%.", "pass"),
    ("1200", "It costs $1,200.", "pass"),
    ("1200", "It costs $1,201.", "fail"),
    ("-4", "x = -4", "pass"),
    ("-4", "x = 4", "fail"),
])
def test_latex_fractions_percentages_and_signs(reference, output, expected):
    assert grade_math(*_math(reference, output)).verdict == expected


def test_an_answer_without_a_number_fails_with_that_reason():
    v = grade_math(*_math("18", "I am not sure how to solve this."))
    assert v.verdict == "fail" and v.reason == "no final answer could be extracted"


def test_the_gsm8k_marker_wins_over_numbers_after_it():
    assert answer_region("blah 3 + 4 = 7\n#### 18\nI checked it 2 times.") == "18\nI checked it 2 times."
    assert grade_math(*_math("18", "Reasoning 16 - 3 - 4 = 9 ...\n#### 18")).verdict == "pass"


def test_a_failed_generation_is_an_error_and_a_truncated_one_says_so():
    task, _ = _math("18", "")
    v = grade_math(task, Generation(id="q", model="m", output="timeout", finish_reason="error"))
    assert v.verdict == "error" and "generation failed" in v.reason
    v = grade_math(task, Generation(id="q", model="m", output="First 16 - 3 = 13, then", finish_reason="length"))
    assert v.verdict == "fail" and v.evidence["truncated"] is True


def test_open_tasks_have_no_verifier():
    task = Task(id="o", kind="open", prompt="Write a poem.")
    assert verify(task, Generation(id="o", model="m", output="Roses", finish_reason="stop")) is None


def test_verify_is_safe_from_threads_and_agrees_with_the_main_thread():
    pairs = [_math("18", "The answer is 18."), _math("18", "The answer is 19."), _math("\\frac{1}{2}", "0.5")] * 4
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda p: verify(*p), pairs))
    main = [verify(*p) for p in pairs]
    assert [v.verdict for v in threaded] == [v.verdict for v in main] == ["pass", "fail", "pass"] * 4
    assert all(v.evidence["judged_sha256"] for v in threaded)


def test_many_math_answers_in_worker_processes_match_one_process(gsm8k_tasks, monkeypatch):
    import hone.grade as grade

    items = _answers(gsm8k_tasks[:10], 0) + _answers(gsm8k_tasks[:10], 1)
    monkeypatch.setattr(grade, "MATH_PROCESS_THRESHOLD", 10)
    monkeypatch.setattr(grade, "MATH_PROCESS_MIN_WORKERS", 2)
    parallel = verify_many(items, workers=2)
    assert [v.verdict for v in parallel] == ["pass"] * 110 + ["fail"] * 110


def test_a_reference_that_is_a_whole_gsm8k_solution_is_read_at_its_marker(shared_data):
    """A Task whose reference is the worked solution as GSM8K ships it (`... #### N`): on these four real
    items, math-verify reading the whole solution picks another number, so a correct answer graded `fail`."""
    import json

    rows = [json.loads(line) for part in ("part1", "part2")
            for line in (shared_data / f"gsm8k_test_{part}.jsonl").read_text().splitlines()]
    picked = [rows[i] for i in (226, 258, 876, 1303)]
    for i, row in enumerate(picked):
        gold = row["answer"].rsplit("####", 1)[1].strip()
        task = Task(id=f"g{i}", kind="math", prompt=row["question"], reference=row["answer"])
        right = grade_math(task, Generation(id=f"g{i}", model="m", output=f"So the answer is {gold}."))
        wrong = grade_math(task, Generation(id=f"g{i}", model="m", output=f"So the answer is {int(gold) + 1}."))
        assert (right.verdict, wrong.verdict) == ("pass", "fail"), (row["answer"][-80:], right.reason)


def test_a_generation_without_finish_reason_is_graded_not_called_truncated():
    from hone.records import Generation as G

    g = G.model_validate({"id": "a", "model": "other-tool", "output": "The answer is 4."})
    assert g.finish_reason is None
    v = grade_math(Task(id="a", kind="math", prompt="2+2?", reference="4"), g)
    assert v.verdict == "pass" and "truncated" not in v.evidence


@pytest.mark.parametrize("output, verdict", [
    # SmolLM2-135M's real answers to "What is 94 + 15?" / "What is 76 - 24?": the question restated, no value
    ("To add 94 and 15, we need to perform the usual addition operation. 94 + 15 equals 22, and 22 is the "
     "result of 94 + 15.", "fail"),
    ("To solve this problem, you need to first convert 24 to a decimal, which is 4. So, 76 - 24", "fail"),
    ("94 + 15 = 109.", "pass"),
    ("The sum is 109.", "pass"),
])
def test_a_restated_expression_is_not_an_answer(output, verdict):
    ref = "109" if "94" in output or "109" in output else "52"
    v = grade_math(Task(id="t", kind="math", prompt="q", reference=ref),
                   Generation(id="t", model="m", output=output, finish_reason="stop"))
    assert v.verdict == verdict, v.reason
    if verdict == "fail":
        assert "unevaluated expression" in v.reason


def test_values_written_as_expressions_still_count():
    for output, ref in (("\\boxed{2\\sqrt{3} + 1}", "1 + 2\\sqrt{3}"), ("\\boxed{\\frac{3}{4}}", "0.75"),
                        ("\\boxed{3 \\cdot 10^5}", "300000"), ("The answer is -5.", "-5")):
        v = grade_math(Task(id="t", kind="math", prompt="q", reference=ref),
                       Generation(id="t", model="m", output=output, finish_reason="stop"))
        assert v.verdict == "pass", (output, v.reason)
