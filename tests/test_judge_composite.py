"""Verifiers first: the composite judge asks the LLM only what no verifier can decide; `verifier` alone never
guesses; `hone judge calibrate` measures the LLM judge against the verifiers on real GSM8K items."""

from __future__ import annotations

import json

import pytest

from hone.importers import import_tasks
from hone.judge import judge_all, make_judge
from hone.judge.calibrate import CalibrateConfig, run_calibrate
from hone.records import Generation, Task
from judge_support import FAST, fake, fast_judge  # noqa: F401 - `fake` is a fixture


def _gen(task: Task, text: str) -> Generation:
    return Generation(id=task.id, model="m", output=text, finish_reason="stop")


def _mixed(shared_data) -> list[tuple[Task, Generation]]:
    gsm = import_tasks(shared_data / "gsm8k_test_part1.jsonl", "gsm8k", limit=2)
    code = import_tasks(shared_data / "humaneval_part1.jsonl", "humaneval", limit=1)[0]
    open_task = Task(id="open-1", kind="open", prompt="Name a primary colour.", reference="red")
    return [
        (gsm[0], _gen(gsm[0], f"So the total is {gsm[0].reference}. The answer is {gsm[0].reference}.")),
        (gsm[1], _gen(gsm[1], f"The answer is {int(gsm[1].reference) + 7}.")),
        (code, _gen(code, f"```python\n{code.reference}\n```")),
        (open_task, _gen(open_task, "Red is one.")),
        (open_task, _gen(open_task, "Green, probably.").model_copy(update={"sample": 1})),
    ]


def test_composite_asks_the_llm_only_where_no_verifier_decides(fake, tmp_path, shared_data):
    items = _mixed(shared_data)
    judge = make_judge("composite:anthropic:claude-haiku-5-5", cache_path=tmp_path / "c.sqlite", **FAST)
    verdicts = judge_all(judge, items)
    assert [v.verdict for v in verdicts] == ["pass", "fail", "pass", "pass", "fail"]
    assert {v.judge for v in verdicts} == {judge.name} == {"composite:anthropic:claude-haiku-5-5"}
    deciders = [v.evidence["decided_by"] for v in verdicts]
    assert deciders[0].startswith("verifier:math") and deciders[2].startswith("verifier:code")
    assert deciders[3:] == ["anthropic:claude-haiku-5-5"] * 2
    asked = [r["body"]["messages"][0]["content"] for r in fake.requests]
    assert len(asked) == 2 and all("Item id: open-1" in a for a in asked)


def test_second_opinion_asks_the_llm_too_but_the_verifier_decides(fake, tmp_path, shared_data):
    items = _mixed(shared_data)[:2]
    judge = make_judge("composite", cache_path=tmp_path / "c.sqlite", second_opinion=True, **FAST)
    verdicts = judge_all(judge, items)
    assert [v.verdict for v in verdicts] == ["pass", "fail"]
    assert [v.evidence["second_opinion"]["agrees"] for v in verdicts] == [True, True]
    assert len(fake.requests) == 2


def test_verifier_alone_never_guesses(shared_data):
    items = _mixed(shared_data)
    verdicts = judge_all(make_judge("verifier"), items)
    assert [v.verdict for v in verdicts] == ["pass", "fail", "pass", "error", "error"]
    assert verdicts[3].evidence["error_kind"] == "no_verifier" and not verdicts[3].evidence["retryable"]


def test_calibrate_reports_agreement_with_math_verify_on_gsm8k(fake, tmp_path, shared_data):
    tasks = import_tasks(shared_data / "gsm8k_test_part1.jsonl", "gsm8k", limit=12)
    gens = [_gen(t, f"Working it out, the answer is {int(t.reference) + (i % 3 == 0)}.") for i, t in enumerate(tasks)]
    from hone.records import write_records

    write_records(tmp_path / "tasks.jsonl", tasks)
    write_records(tmp_path / "gens.jsonl", gens)
    config = CalibrateConfig(judge=fast_judge("anthropic"))
    report = run_calibrate(config, tmp_path / "tasks.jsonl", tmp_path / "gens.jsonl", tmp_path / "cal.json").report
    assert report.both_decided == 12 and report.agreement == 1.0 and report.cohen_kappa == pytest.approx(1.0)
    assert report.confusion["fail"]["fail"] == 4 and report.confusion["pass"]["pass"] == 8
    assert json.loads((tmp_path / "cal.json").read_text())["judge"] == "anthropic:claude-haiku-5-5"
    fake.lenient = True  # now a judge that passes whatever it is shown: calibration must expose it
    write_records(tmp_path / "gens.jsonl", [_gen(t, f"The answer is {int(t.reference) + 1}.") for t in tasks])
    # Other answers, the same report file: a new measurement replaces the old one only when asked (--restart).
    report = run_calibrate(config.model_copy(update={"restart": True}), tmp_path / "tasks.jsonl",
                           tmp_path / "gens.jsonl", tmp_path / "cal.json").report
    assert report.confusion["fail"]["pass"] == 12 and report.false_pass_rate == 1.0
    assert report.agreement == 0.0 and len(report.disagreements) == 12
