"""A re-run never mixes its records with those of a run made with other inputs or settings (issue 12).

Each case kills (or finishes) a stage, changes one thing, and checks the re-run refuses with one line naming
what changed and `--restart`, leaves the earlier work untouched, and with `--restart` writes records of the
new settings only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hone.errors import HoneError
from hone.generate.base import GenParams
from hone.generate.hf import HFGenerator
from hone.generate.run import GenerateStageConfig, run_generate
from hone.grade.run import GradeConfig, run_grade
from hone.judge.factory import JudgeSetup
from hone.judge.run import JudgeStageConfig, run_judge
from hone.records import Generation, Task, Verdict, read_records, write_records

HONE = [sys.executable, "-m", "hone.cli"]


def hf_ref(model: Path) -> dict:
    """What `hone generate` records for the default engine."""
    from hone.generate.registry import GenerateConfig, model_ref

    return model_ref(GenerateConfig(), model)


def _tasks(path: Path, n: int = 8) -> Path:
    write_records(path, [Task(id=f"t{i}", kind="math", prompt=f"What is {i} + {i}?", reference=str(2 * i))
                         for i in range(n)])
    return path


class _KilledAfter:
    """The real generator, interrupted after `n` records, as Ctrl-C or a kill would."""

    def __init__(self, generator, n: int):
        self.generator, self.n, self.name = generator, n, generator.name

    def generate(self, requests, params, progress=None):
        for i, g in enumerate(self.generator.generate(requests, params, progress)):
            if i == self.n:
                raise KeyboardInterrupt
            yield g


@pytest.fixture(scope="module")
def generator(tiny_model_dir):
    return HFGenerator.from_dir(str(tiny_model_dir), device="cpu")


def _kill_at_temperature(generator, tiny_model_dir, tmp_path) -> tuple[Path, Path, Path]:
    tasks, out = _tasks(tmp_path / "t.jsonl"), tmp_path / "g.jsonl"
    hot = GenParams(max_new_tokens=6, temperature=0.7, batch_size=2)
    with pytest.raises(KeyboardInterrupt):
        run_generate(GenerateStageConfig(params=hot, model_ref=hf_ref(tiny_model_dir)),
                     lambda: _KilledAfter(generator, 3), tasks, out)
    partial = out.with_name(out.name + ".partial")
    assert len(partial.read_text().splitlines()) == 3
    return tasks, out, partial


def test_killed_generation_resumed_with_another_temperature_is_refused_then_restarted(generator, tiny_model_dir,
                                                                                         tmp_path):
    tasks, out, partial = _kill_at_temperature(generator, tiny_model_dir, tmp_path)
    before = partial.read_text()
    greedy = GenParams(max_new_tokens=6, temperature=0.0, batch_size=2)
    with pytest.raises(HoneError, match=r"`params.temperature` was 0.7 then and is 0.0 now\); pass --restart"):
        run_generate(GenerateStageConfig(params=greedy, model_ref=hf_ref(tiny_model_dir)), lambda: generator,
                     tasks, out)
    assert partial.read_text() == before and not out.exists()
    records = run_generate(GenerateStageConfig(params=greedy, model_ref=hf_ref(tiny_model_dir), restart=True),
                           lambda: generator, tasks, out).generations
    assert len(records) == 8 and {g.params["temperature"] for g in records} == {0.0}
    manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["config"]["params"]["temperature"] == 0.0


def test_killed_generation_resumed_with_another_model_is_refused(generator, tiny_model_dir, tmp_path):
    from hone.models.tiny import build_tiny_model

    tasks, out, partial = _kill_at_temperature(generator, tiny_model_dir, tmp_path)
    other = build_tiny_model(tmp_path / "other", seed=1)
    hot = GenParams(max_new_tokens=6, temperature=0.7, batch_size=2)
    with pytest.raises(HoneError, match=r"input `model` has other content .*--restart"):
        run_generate(GenerateStageConfig(params=hot, model_ref=hf_ref(other)), lambda: generator, tasks, out)
    assert len(partial.read_text().splitlines()) == 3


def test_killed_generation_resumed_with_another_engine_or_batch_size_is_refused(generator, tiny_model_dir,
                                                                                 tmp_path):
    from hone.generate.registry import GenerateConfig, model_ref

    tasks, out, partial = _kill_at_temperature(generator, tiny_model_dir, tmp_path)
    hot = GenParams(max_new_tokens=6, temperature=0.7, batch_size=2)
    served = model_ref(GenerateConfig(backend="server", data_parallel_size=4), tiny_model_dir)
    with pytest.raises(HoneError, match=r"`engine` was \"hf\" then and is \"server\" now\); pass --restart"):
        run_generate(GenerateStageConfig(params=hot, model_ref=served), lambda: generator, tasks, out)
    wider = hot.model_copy(update={"batch_size": 4})
    with pytest.raises(HoneError, match=r"`params.batch_size` was 2 then and is 4 now"):
        run_generate(GenerateStageConfig(params=wider, model_ref=hf_ref(tiny_model_dir)), lambda: generator,
                     tasks, out)
    assert len(partial.read_text().splitlines()) == 3


def test_cli_refusal_is_one_line_with_exit_2_and_the_flag(generator, tiny_model_dir, tmp_path):
    tasks, out, partial = _kill_at_temperature(generator, tiny_model_dir, tmp_path)
    args = [*HONE, "generate", "--model", str(tiny_model_dir), "--tasks", str(tasks), "-o", str(out),
            "--max-new-tokens", "6", "--batch-size", "2"]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\nerror: ") + done.stderr.startswith("error: ") == 1
    assert done.stderr.splitlines()[-1].startswith("error: ") and "Traceback" not in done.stderr, done.stderr
    assert "params.temperature" in done.stderr and "--restart" in done.stderr
    done = subprocess.run([*args, "--restart"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert {g.params["temperature"] for g in read_records(out, Generation)} == {0.0}


def test_killed_judging_resumed_with_another_judge_is_refused(tiny_model_dir, tmp_path):
    tasks = _tasks(tmp_path / "t.jsonl", 4)
    gens = tmp_path / "g.jsonl"
    write_records(gens, [Generation(id=f"t{i}", model="m", output=str(2 * i if i % 2 else 7), finish_reason="stop")
                         for i in range(4)])
    out = tmp_path / "v.jsonl"
    run_judge(JudgeStageConfig(judge=JudgeSetup(spec="verifier")), tasks, gens, out)
    manifest = out.with_name(out.name + ".manifest.json")  # what a kill leaves: running, a partial, no output
    manifest.write_text(manifest.read_text().replace('"status": "complete"', '"status": "running"'))
    partial = out.with_name(out.name + ".partial")
    out.rename(partial)
    with pytest.raises(HoneError, match=r"`judge` was \"verifier\" then and is \"local:.*\" now\); pass --restart"):
        run_judge(JudgeStageConfig(judge=JudgeSetup(spec=f"local:{tiny_model_dir}")), tasks, gens, out)
    assert len(read_records(partial, Verdict)) == 4


def test_a_finished_output_of_other_settings_is_refused_not_replaced(tmp_path):
    from hone.grade.sandbox import Limits

    tasks = _tasks(tmp_path / "t.jsonl", 2)
    gens = tmp_path / "g.jsonl"
    write_records(gens, [Generation(id="t1", model="m", output="2", finish_reason="stop")])
    out = tmp_path / "v.jsonl"
    run_grade(GradeConfig(), tasks, gens, out)
    before = out.read_text()
    with pytest.raises(HoneError, match=r"`limits.cpu_s` was 11.0 then and is 4.0 now"):
        run_grade(GradeConfig(limits=Limits(timeout_s=3.0)), tasks, gens, out)
    assert out.read_text() == before
    run_grade(GradeConfig(limits=Limits(timeout_s=3.0), restart=True), tasks, gens, out)


def test_an_output_equal_to_an_input_is_always_refused(tiny_model_dir, tmp_path):
    tasks = _tasks(tmp_path / "t.jsonl")
    before = tasks.read_text()
    done = subprocess.run([*HONE, "generate", "--model", str(tiny_model_dir), "--tasks", str(tasks), "-o",
                           str(tasks), "--overwrite"], capture_output=True, text=True)
    assert done.returncode == 2 and "the output is also an input" in done.stderr, done.stderr
    assert tasks.read_text() == before


def test_an_unrelated_existing_file_is_kept_without_overwrite(shared_data, tmp_path):
    out = tmp_path / "notes.jsonl"
    out.write_text("my own notes\n")
    args = [*HONE, "tasks", "import", str(shared_data / "gsm8k_test_part1.jsonl"), "--format", "gsm8k",
            "-o", str(out), "--limit", "5"]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.splitlines()[-1].startswith("error: "), done.stderr
    assert "--overwrite" in done.stderr and "Traceback" not in done.stderr
    assert out.read_text() == "my own notes\n"
    assert subprocess.run([*args, "--overwrite"], capture_output=True).returncode == 0
    assert subprocess.run(args, capture_output=True).returncode == 0  # its own output: re-importing is fine
    assert len(read_records(out, Task)) == 5
