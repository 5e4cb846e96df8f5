"""The `grade` stage and `hone grade`: one verdict per gradable generation, resumable, skipped when done."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hone.errors import HoneError
from hone.grade.run import GradeConfig, run_grade
from hone.records import Generation, Task, Verdict, dumps, read_records, write_records
from hone.runs import manifest_for

HONE = [sys.executable, "-m", "hone.cli"]
CODE_TESTS = "def check(candidate):\n    assert candidate(3) == 9\n"


def _files(tmp_path):
    tasks = [Task(id=f"m{i}", kind="math", prompt=f"{i} squared?", reference=str(i * i)) for i in range(6)]
    tasks += [Task(id="sq", kind="code", prompt="square", tests=CODE_TESTS, entry_point="sq",
                   meta={"test_style": "humaneval"}),
              Task(id="poem", kind="open", prompt="Write a haiku.")]
    gens = [Generation(id=f"m{i}", model="m", output=f"The answer is {i * i + (i % 2)}.", finish_reason="stop")
            for i in range(6)]
    gens += [Generation(id="sq", sample=s, model="m", output=f"```python\ndef sq(x):\n    return x {x}\n```",
                        finish_reason="stop") for s, x in enumerate(("* x", "+ x"))]
    gens += [Generation(id="poem", model="m", output="Old pond", finish_reason="stop")]
    write_records(tmp_path / "tasks.jsonl", tasks)
    write_records(tmp_path / "gens.jsonl", gens)
    return tmp_path / "tasks.jsonl", tmp_path / "gens.jsonl", tmp_path / "verdicts.jsonl"


def test_grades_math_and_code_skips_open_and_records_a_manifest(tmp_path):
    tasks, gens, out = _files(tmp_path)
    result = run_grade(GradeConfig(workers=2), tasks, gens, out)
    records, skipped = result.verdicts, result.skipped
    assert not skipped
    got = {(v.id, v.sample): v.verdict for v in records}
    assert got == {("m0", 0): "pass", ("m1", 0): "fail", ("m2", 0): "pass", ("m3", 0): "fail",
                   ("m4", 0): "pass", ("m5", 0): "fail", ("sq", 0): "pass", ("sq", 1): "fail"}
    assert read_records(out, Verdict) == records
    manifest = json.loads(manifest_for(out).read_text())
    assert manifest["status"] == "complete"
    assert manifest["counts"] == {"generations": 9, "open_ungraded": 1, "pass": 4, "fail": 4, "error": 0,
                                  "sandbox": manifest["counts"]["sandbox"]}
    assert manifest["config"]["graders"]["code"].startswith("verifier:code@")
    again = run_grade(GradeConfig(), tasks, gens, out)
    assert again.skipped and again.verdicts == records


def test_a_killed_run_resumes_without_regrading_finished_items(tmp_path):
    tasks, gens, out = _files(tmp_path)
    earlier = Verdict(id="m0", sample=0, judge="verifier:math@1", verdict="pass", reason="graded before the kill")
    run_grade(GradeConfig(workers=2), tasks, gens, out)
    # What a kill leaves: the manifest says running, the output is not there yet, the partial ends torn.
    manifest = out.with_name(out.name + ".manifest.json")
    manifest.write_text(manifest.read_text().replace('"status": "complete"', '"status": "running"'))
    out.unlink()
    partial = out.with_name(out.name + ".partial")
    partial.write_text(dumps(earlier) + "\n" + '{"id": "m1", "sam')  # torn last line from the kill
    records = run_grade(GradeConfig(workers=2), tasks, gens, out).verdicts
    assert len(records) == 8
    assert next(v for v in records if v.id == "m0").reason == "graded before the kill"
    assert next(v for v in records if v.id == "m1").verdict == "fail"
    assert not partial.exists()


def test_a_generation_for_an_unknown_task_is_an_error(tmp_path):
    tasks, gens, out = _files(tmp_path)
    with open(gens, "a") as f:
        f.write(dumps(Generation(id="nope", model="m", output="1", finish_reason="stop")) + "\n")
    with pytest.raises(HoneError, match="gens.jsonl: generation for task id 'nope'"):
        run_grade(GradeConfig(), tasks, gens, out)
    assert not out.exists()


def test_cli_grades_and_reports_bad_input_without_a_traceback(tmp_path):
    tasks, gens, out = _files(tmp_path)
    done = subprocess.run([*HONE, "grade", "--tasks", str(tasks), "--generations", str(gens), "-o", str(out),
                           "--timeout", "5"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "wrote 8 verdicts" in done.stdout and "4 pass, 4 fail" in done.stdout
    assert "sandbox:" in done.stdout
    gens.write_text('{"id": "m0", "model": "m"}\n')
    bad = subprocess.run([*HONE, "grade", "--tasks", str(tasks), "--generations", str(gens), "-o",
                          str(tmp_path / "v2.jsonl")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "gens.jsonl:1" in bad.stderr
    assert "Traceback" not in bad.stderr
