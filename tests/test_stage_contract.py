"""Every stage follows one contract (hone.stage_contract): `run_<stage>(config, inputs, out) -> <Stage>Result`
with the outputs, the counts, and `skipped=True` when the same inputs and settings were already done."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from hone.critique.run import CritiqueResult, CritiqueStageConfig, run_critique
from hone.data.run import DataResult, DataStageConfig, run_data
from hone.generate.base import GenParams
from hone.generate.run import GenerateResult, GenerateStageConfig, run_generate
from hone.grade.run import GradeConfig, GradeResult, run_grade
from hone.judge import judge_all, make_judge
from hone.judge.calibrate import CalibrateConfig, CalibrateResult, run_calibrate
from hone.judge.factory import JudgeSetup
from hone.judge.failures import FailuresConfig, FailuresResult, run_failures
from hone.judge.run import JudgeResult, JudgeStageConfig, run_judge
from hone.records import Generation, Task, write_records
from hone.sample.run import SampleResult, SampleStageConfig, run_sample
from hone.stage_contract import StageResult
from judge_support import fake, fast_judge  # noqa: F401 - `fake` is a fixture

# Two sums: the first answered right, the second wrong.
TASKS = [Task(id="t0", kind="math", prompt="What is 2 + 3?", reference="5"),
         Task(id="t1", kind="math", prompt="What is 4 + 4?", reference="8")]
ANSWERS = {"t0": "The answer is 5.", "t1": "The answer is 7."}


class Answers:
    """A generator that answers every request from ANSWERS (rewrites: the right sum); counts its requests."""

    name = "answers"

    def __init__(self):
        self.requests = 0

    def generate(self, requests, params, progress=None):
        for r in requests:
            self.requests += 1
            rewrite = len(r.messages) > 1
            yield Generation(id=r.id, sample=r.sample, model=self.name, finish_reason="stop",
                             output="The answer is 8." if rewrite else ANSWERS[r.id])


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    paths = {"tasks": tmp_path / "tasks.jsonl", "generations": tmp_path / "gens.jsonl"}
    write_records(paths["tasks"], TASKS)
    write_records(paths["generations"], [Generation(id=i, model="m", output=o, finish_reason="stop")
                                         for i, o in ANSWERS.items()])
    run_grade(GradeConfig(), paths["tasks"], paths["generations"], tmp_path / "verdicts.jsonl")
    return {**paths, "verdicts": tmp_path / "verdicts.jsonl"}


def _generate(files, out):
    return run_generate(GenerateStageConfig(params=GenParams(max_new_tokens=8), model_ref={"model": "answers"}),
                        Answers, files["tasks"], out)


def _grade(files, out):
    return run_grade(GradeConfig(), files["tasks"], files["generations"], out)


def _judge(files, out):
    return run_judge(JudgeStageConfig(judge=JudgeSetup(spec="verifier")), files["tasks"], files["generations"], out)


def _calibrate(files, out):
    return run_calibrate(CalibrateConfig(judge=fast_judge("anthropic")), files["tasks"], files["generations"], out)


def _failures(files, out):
    return run_failures(FailuresConfig(clusters=1), files["verdicts"], out)


def _critique(files, out):
    verifier = make_judge("verifier")
    return run_critique(CritiqueStageConfig(params=GenParams(max_new_tokens=8)), Answers(),
                        lambda items: judge_all(verifier, items), files["tasks"], files["generations"],
                        files["verdicts"], out)


def _data(files, out):
    return run_data(DataStageConfig(kind="sft"), files["tasks"], out, generations_path=files["generations"],
                    verdicts_path=files["verdicts"])


def _sample(files, out):
    config = SampleStageConfig(generate=GenerateStageConfig(params=GenParams(max_new_tokens=8),
                                                            model_ref={"model": "answers"}), resample_unsolved=1)
    return run_sample(config, Answers, files["tasks"], out.parent)


CASES: dict[str, tuple[Callable, type[StageResult], str, dict[str, int]]] = {
    "generate": (_generate, GenerateResult, "g.jsonl", {"tasks": 2, "generations": 2, "length": 0, "errors": 0}),
    "grade": (_grade, GradeResult, "v.jsonl",
              {"generations": 2, "open_ungraded": 0, "pass": 1, "fail": 1, "error": 0, "timeouts": 0}),
    "judge": (_judge, JudgeResult, "v.jsonl", {"items": 2, "pass": 1, "fail": 1, "unfinished": 0}),
    "calibrate": (_calibrate, CalibrateResult, "cal.json",
                  {"items": 2, "both_decided": 2, "llm_errors": 0, "disagreements": 0}),
    "failures": (_failures, FailuresResult, "f.jsonl", {"failures": 1, "clusters": 1}),
    "critique": (_critique, CritiqueResult, "c.jsonl",
                 {"failed_answers": 1, "attempts": 1, "accepted": 1, "errors": 0, "unfinished": 0}),
    "sample": (_sample, SampleResult, "samples.jsonl", {"tasks": 2, "solved": 1, "samples": 3, "errors": 0}),
    "data": (_data, DataResult, "sft.jsonl",
             {"rows": 1, "built": 1, "duplicates": 0, "contaminated": 0, "replay_added": 0}),
}


@pytest.mark.parametrize("stage", list(CASES))
def test_a_stage_returns_its_result_and_is_skipped_when_run_again(stage, files, tmp_path, request):
    if stage == "calibrate":
        request.getfixturevalue("fake")  # the local fake LLM server stands in for the paid judge
    run, result_type, name, counts = CASES[stage]
    out = tmp_path / "out" / name
    first = run(files, out)
    assert type(first) is result_type and not first.skipped
    assert first.counts == counts and all(Path(p).exists() for p in first.outputs.values()) and out in \
        first.outputs.values()
    again = run(files, out)
    assert type(again) is result_type and again.skipped and again.counts == counts
    assert again.outputs == first.outputs
