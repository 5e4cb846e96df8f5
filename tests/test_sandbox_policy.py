"""Without full isolation, code grading refuses to run model-written code unless `weak` was chosen explicitly.

The machine without isolation is real, not mocked: HONE_SANDBOX=none makes the probe take the same path as a
machine where `bwrap` is missing (no namespaces), and everything after that is the code users run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hone.errors import HoneError
from hone.grade.run import GradeConfig, run_grade
from hone.loop_config import LoopConfig
from hone.records import Generation, Task, Verdict, read_records, write_records
from hone.runs import manifest_for

HONE = [sys.executable, "-m", "hone.cli"]
TESTS = "def check(candidate):\n    assert candidate(3) == 9\n"


def _files(tmp_path, with_code: bool = True):
    tasks = [Task(id="m", kind="math", prompt="3 squared?", reference="9")]
    gens = [Generation(id="m", model="m", output="The answer is 9.", finish_reason="stop")]
    if with_code:
        tasks.append(Task(id="sq", kind="code", prompt="square", tests=TESTS, entry_point="sq",
                          meta={"test_style": "humaneval"}))
        gens.append(Generation(id="sq", model="m", output="```python\ndef sq(x):\n    return x * x\n```",
                               finish_reason="stop"))
    write_records(tmp_path / "tasks.jsonl", tasks)
    write_records(tmp_path / "gens.jsonl", gens)
    return tmp_path / "tasks.jsonl", tmp_path / "gens.jsonl", tmp_path / "verdicts.jsonl"


@pytest.fixture
def no_isolation(monkeypatch):
    monkeypatch.setenv("HONE_SANDBOX", "none")


def test_grading_code_refuses_without_isolation_and_runs_nothing(tmp_path, no_isolation):
    tasks, gens, out = _files(tmp_path)
    with pytest.raises(HoneError, match=r"^refusing to run model-written code: the sandbox cannot isolate it here "
                                        r"\(namespaces turned off .*--sandbox weak") as e:
        run_grade(GradeConfig(), tasks, gens, out)
    assert "\n" not in str(e.value)
    assert not out.exists() and not manifest_for(out).exists() and not out.with_name(out.name + ".partial").exists()


def test_weak_grades_and_every_code_verdict_and_the_manifest_say_so(tmp_path, no_isolation):
    tasks, gens, out = _files(tmp_path)
    records = run_grade(GradeConfig(sandbox="weak"), tasks, gens, out).verdicts
    code = next(v for v in records if v.id == "sq")
    assert code.verdict == "pass"
    assert code.evidence["sandbox"] == "weak" and "NO namespaces" in code.evidence["isolation"]
    assert any("NOT isolated" in n for n in code.evidence["isolation_notes"])
    manifest = json.loads(manifest_for(out).read_text())
    assert manifest["config"]["sandbox"] == "weak"
    assert manifest["counts"]["sandbox"].startswith("weak: ") and "NO namespaces" in manifest["counts"]["sandbox"]


def test_math_alone_needs_no_sandbox(tmp_path, no_isolation):
    tasks, gens, out = _files(tmp_path, with_code=False)
    records = run_grade(GradeConfig(), tasks, gens, out).verdicts
    assert [v.verdict for v in records] == ["pass"]


def test_the_level_is_part_of_the_fingerprint(tmp_path):
    """A finished weak run is not taken for a strict one (and the other way round)."""
    tasks, gens, out = _files(tmp_path)
    run_grade(GradeConfig(sandbox="weak"), tasks, gens, out)
    with pytest.raises(HoneError, match='`sandbox` was "weak" then and is "strict" now'):
        run_grade(GradeConfig(sandbox="strict"), tasks, gens, out)


def test_an_unknown_level_is_an_error(tmp_path):
    tasks, gens, out = _files(tmp_path)
    with pytest.raises(HoneError, match="sandbox level 'none': use strict or weak"):
        run_grade(GradeConfig(sandbox="none"), tasks, gens, out)


def test_cli_refuses_in_one_line_with_exit_2_and_runs_with_weak(tmp_path):
    tasks, gens, out = _files(tmp_path)
    argv = [*HONE, "grade", "--tasks", str(tasks), "--generations", str(gens), "-o", str(out)]
    env = {**os.environ, "HONE_SANDBOX": "none"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refusing to run model-written code"), done.stderr
    assert not out.exists()
    done = subprocess.run([*argv, "--sandbox", "weak"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "sandbox: weak: same uid" in done.stdout or "sandbox: weak: separate uid" in done.stdout
    assert "NO namespaces" in done.stdout
    assert {v.evidence.get("sandbox") for v in read_records(out, Verdict) if v.id == "sq"} == {"weak"}


def test_judge_and_bench_refuse_before_any_work(tmp_path, no_isolation):
    from hone.bench.run import BenchConfig, run_bench
    from hone.judge.factory import JudgeSetup
    from hone.judge.run import JudgeStageConfig, run_judge

    tasks, gens, out = _files(tmp_path)
    with pytest.raises(HoneError, match="refusing to run model-written code"):
        run_judge(JudgeStageConfig(judge=JudgeSetup(spec="verifier")), tasks, gens, out)
    assert not out.exists()
    run = run_judge(JudgeStageConfig(judge=JudgeSetup(spec="verifier", sandbox="weak")), tasks, gens, out)
    assert next(v for v in run.verdicts if v.id == "sq").evidence["sandbox"] == "weak"
    assert json.loads(manifest_for(out).read_text())["config"]["sandbox"] == "weak"
    # No model is loaded and nothing is generated: the refusal comes first.
    with pytest.raises(HoneError, match="refusing to run model-written code"):
        run_bench(BenchConfig(), tmp_path / "no-model", [str(tasks)], tmp_path / "bench")
    assert not (tmp_path / "bench").exists()


def test_critique_refuses_before_loading_the_model_to_rewrite(tmp_path, tiny_model_dir):
    """`hone critique --judge verifier` runs the rewritten code answers: the same level applies."""
    tasks, gens, _ = _files(tmp_path)
    verdicts = tmp_path / "verdicts.jsonl"
    write_records(verdicts, [Verdict(id="sq", sample=0, judge="verifier:code@1", verdict="fail", reason="wrong")])
    out = tmp_path / "critiques.jsonl"
    argv = [*HONE, "critique", "--model", str(tiny_model_dir), "--tasks", str(tasks), "--generations", str(gens),
            "--verdicts", str(verdicts), "-o", str(out), "--judge", "verifier"]
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "HONE_SANDBOX": "none"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("error: refusing to run model-written code") and not out.exists()


def test_the_loop_refuses_before_round_0(tmp_path, no_isolation):
    from hone.loop import run_loop

    tasks, _, _ = _files(tmp_path)
    heldout = tmp_path / "heldout.jsonl"
    write_records(heldout, [Task(id="h", kind="math", prompt="4 squared?", reference="16")])
    config = LoopConfig(base_model=tmp_path / "no-model", train_tasks=tasks, heldout={"h": heldout})
    said: list[str] = []
    with pytest.raises(HoneError, match="refusing to run model-written code.*config: `sandbox: weak`"):
        run_loop(config, tmp_path / "run", say=said.append)
    assert said == [] and not (tmp_path / "run" / "loop_config.json").exists()


def test_loop_config_key(tmp_path):
    base = {"base_model": "m", "train_tasks": "t.jsonl", "heldout": {"x": "h.jsonl"}}
    assert LoopConfig.model_validate(base).sandbox == "strict"
    assert LoopConfig.model_validate({**base, "sandbox": "weak"}).sandbox == "weak"
    with pytest.raises(ValueError, match="sandbox"):
        LoopConfig.model_validate({**base, "sandbox": "none"})
