"""`hone bench` end to end on a tiny local model, with a reference file: consistent win/tie/loss."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hone.bench.report import BenchReport
from hone.bench.run import BenchConfig, BenchResult, run_bench
from hone.generate.base import GenParams
from hone.importers import import_tasks
from hone.records import Generation, Task, Verdict, read_records, write_records

HONE = [sys.executable, "-m", "hone.cli"]
PARAMS = GenParams(max_new_tokens=24, batch_size=16)
CONFIG = BenchConfig(params=PARAMS)


@pytest.fixture(scope="module")
def suites(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("suites")
    arith = [Task(id=f"add-{i}", kind="math", prompt=f"What is {10 + i} + {20 + 3 * i}?", reference=str(30 + 4 * i))
             for i in range(6)]
    code = import_tasks(shared_data / "humaneval_part1.jsonl", "humaneval", limit=3)
    chat = [Task(id=f"chat-{i}", kind="open", prompt=p) for i, p in enumerate(("Say hello.", "Name a colour."))]
    for name, tasks in (("arith", arith), ("humaneval", code), ("chat", chat)):
        write_records(root / f"{name}.jsonl", tasks)
    raw = [json.loads(line) for line in (shared_data / "humaneval_part1.jsonl").read_text().splitlines()[:3]]
    ref = [Generation(id=t.id, model="ref", output=f"The answer is {t.reference}.", finish_reason="stop")
           for t in arith[:3]]
    ref += [Generation(id="add-3", model="ref", output="The answer is 7.", finish_reason="stop"),
            Generation(id="add-4", model="ref", output="upstream 500", finish_reason="error")]  # add-5: missing
    ref += [Generation(id=r["task_id"], model="ref", output=r["prompt"] + r["canonical_solution"], finish_reason="stop")
            for r in (raw[0], raw[2])]
    ref += [Generation(id=raw[1]["task_id"], model="ref", output="    return []\n", finish_reason="stop")]
    ref += [Generation(id=t.id, model="ref", output="A long and friendly reply.", finish_reason="stop") for t in chat]
    write_records(root / "reference.jsonl", ref)
    return root


class LongerWins:
    """A pairwise judge by rule (hone.judge.base.Judge): the longer answer wins."""

    name, parallelism = "longer_wins", 2

    async def compare(self, task: Task, ours: Generation, theirs: Generation) -> Verdict:
        outcome = "tie" if len(ours.output) == len(theirs.output) else (
            "win" if len(ours.output) > len(theirs.output) else "loss")
        return Verdict(id=task.id, judge="longer-wins", verdict=outcome)

    async def aclose(self) -> None:
        pass


def _expected(ours: list[Verdict], theirs: list[Verdict]) -> dict[str, int]:
    other = {v.id: v.verdict for v in theirs}
    counts = {"win": 0, "tie": 0, "loss": 0, "not_compared": 0, "missing": 0}
    for v in ours:
        r = other.get(v.id)
        if r is None:
            counts["missing"] += 1
        elif "error" in (v.verdict, r):
            counts["not_compared"] += 1
        else:
            a, b = v.verdict == "pass", r == "pass"
            counts["win" if a and not b else "loss" if b and not a else "tie"] += 1
    return counts


def test_bench_end_to_end_with_a_reference(tiny_model_dir, suites, tmp_path):
    out = tmp_path / "bench"
    paths = [str(suites / f"{n}.jsonl") for n in ("arith", "humaneval", "chat")]
    result = run_bench(CONFIG.model_copy(update={"workers": 2}), tiny_model_dir, paths, out,
                       reference=suites / "reference.jsonl", judge=LongerWins())
    report = result.report.to_json()
    assert json.loads((out / "bench.json").read_text()) == report
    for name in ("arith", "humaneval"):
        ours = read_records(out / name / "verdicts.jsonl", Verdict)
        theirs = read_records(out / name / "reference_verdicts.jsonl", Verdict)
        gt = report["suites"][name]["comparison"]["ground_truth"]
        want = _expected(ours, theirs)
        assert (gt["win"], gt["tie"], gt["loss"]) == (want["win"], want["tie"], want["loss"])
        assert len(gt["not_compared"]) == want["not_compared"]
        assert len(gt["missing_in_reference"]) == want["missing"]
        assert gt["paired"]["n"] == want["win"] + want["tie"] + want["loss"]
        assert gt["paired"]["improved"] == want["win"] and gt["paired"]["regressed"] == want["loss"]
    arith = report["suites"]["arith"]
    assert arith["reference_accuracy"]["pass"] == 3 and arith["reference_accuracy"]["error"] == 1
    assert [x["id"] for x in arith["comparison"]["ground_truth"]["not_compared"]] == ["add-4"]
    assert arith["comparison"]["ground_truth"]["missing_in_reference"] == ["add-5"]
    assert report["suites"]["humaneval"]["reference_accuracy"]["pass"] == 2
    assert report["sandbox"]
    chat = report["suites"]["chat"]["comparison"]["open"]
    assert chat["tasks"] == 2 and chat["judge"] == "longer_wins"
    assert chat["win"] + chat["tie"] + chat["loss"] == 2 and chat["not_compared"] == 0
    # Accuracy, counts and failures agree with the verdict files.
    ours = read_records(out / "arith" / "verdicts.jsonl", Verdict)
    acc = arith["accuracy"]
    assert acc["pass"] == sum(v.verdict == "pass" for v in ours) and acc["answers"] == 6
    assert acc["accuracy"] == pytest.approx(acc["pass"] / 6) and acc["ci95"][0] <= acc["accuracy"] <= acc["ci95"][1]
    ours_generated = read_records(out / "arith" / "generations.jsonl", Generation)
    assert arith["stop_rate"] == sum(g.finish_reason == "stop" for g in ours_generated) / 6
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    n_failed = sum(v.verdict != "pass" for s in ("arith", "humaneval")
                   for v in read_records(out / s / "verdicts.jsonl", Verdict))
    assert len(failures) == n_failed and all(f["output"] is not None for f in failures)
    md = (out / "bench.md").read_text()
    assert "| arith | all | 6 | 6 |" in md and "Against the reference" in md and "pairwise judge `longer_wins`" in md


def test_without_a_pairwise_judge_open_tasks_are_not_compared_and_reruns_resume(tiny_model_dir, suites, tmp_path,
                                                                                  monkeypatch):
    out = tmp_path / "bench"
    paths = [f"hello={suites / 'chat.jsonl'}", str(suites / "arith.jsonl")]
    first = run_bench(CONFIG, tiny_model_dir, paths, out, reference=suites / "reference.jsonl").report.to_json()
    assert first["suites"]["hello"]["comparison"]["open"] == {"tasks": 2, "judge": None, "win": 0, "tie": 0,
                                                              "loss": 0, "error": 0, "not_compared": 2}
    assert "not compared (no pairwise judge)" in (out / "bench.md").read_text()
    stamp = (out / "arith" / "generations.jsonl").stat().st_mtime_ns

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded again: finished generation should be skipped")

    monkeypatch.setattr("hone.generate.hf.HFGenerator.from_dir", no_model)
    again = run_bench(CONFIG, tiny_model_dir, paths, out, reference=suites / "reference.jsonl").report.to_json()
    assert (out / "arith" / "generations.jsonl").stat().st_mtime_ns == stamp
    assert again["suites"] == first["suites"]


def test_cli_bench_prints_the_table_and_refuses_a_mislabelled_suite(tiny_model_dir, suites, tmp_path, shared_data):
    out = tmp_path / "cli"
    done = subprocess.run([*HONE, "bench", "--model", str(tiny_model_dir), "--tasks", str(suites / "arith.jsonl"),
                           "--reference", str(suites / "reference.jsonl"), "-o", str(out),
                           "--max-new-tokens", "16", "--train-data", str(suites / "arith.jsonl")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "| arith | all | 6 | 6 |" in done.stdout and "6 of 6 tasks contaminated" in done.stdout
    assert "overlap the training data" in done.stderr
    gsm = import_tasks(shared_data / "gsm8k_test_part1.jsonl", "gsm8k", limit=5)
    write_records(tmp_path / "gsm.jsonl", gsm)
    bad = subprocess.run([*HONE, "bench", "--model", str(tiny_model_dir), "--tasks", f"MATH={tmp_path / 'gsm.jsonl'}",
                          "-o", str(tmp_path / "bad")], capture_output=True, text=True)
    assert bad.returncode == 2 and "named math but looks like GSM8K" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "bad").exists()


def test_bench_returns_its_typed_result_and_skips_an_identical_second_run(tiny_model_dir, suites, tmp_path):
    out = tmp_path / "bench"
    paths = [str(suites / "arith.jsonl"), str(suites / "chat.jsonl")]
    first = run_bench(CONFIG, tiny_model_dir, paths, out, reference=suites / "reference.jsonl", judge=LongerWins())
    assert isinstance(first, BenchResult) and not first.skipped
    verdicts = read_records(out / "arith" / "verdicts.jsonl", Verdict)
    passed = sum(v.verdict == "pass" for v in verdicts)
    assert first.counts == {"suites": 2, "answers": 6, "pass": passed, "fail": 6 - passed, "error": 0,
                            "failures": 6 - passed}
    assert first.outputs == {"bench": out / "bench.json", "markdown": out / "bench.md",
                             "failures": out / "failures.jsonl"}
    assert first.correct == {"arith": {v.id: v.verdict == "pass" for v in verdicts}, "chat": {}}
    assert first.categories["arith"]["add-0"] == "arith" and first.figures()["arith"]["n"] == 6
    # bench.json is the typed report written out, and reads back as the same report.
    assert BenchReport.model_validate(json.loads((out / "bench.json").read_text())) == first.report
    assert first.report.suites["chat"].comparison.open.win + first.report.suites["chat"].comparison.open.loss == 2
    again = run_bench(CONFIG, tiny_model_dir, paths, out, reference=suites / "reference.jsonl", judge=LongerWins())
    assert again.skipped and again.report.suites == first.report.suites and again.counts == first.counts
