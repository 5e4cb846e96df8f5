"""The sample stage (hone.sample.run): passes over the unsolved, one manifest, skip without a model, restart."""

from __future__ import annotations

import pytest

from hone.errors import HoneError
from hone.generate.base import GenParams
from hone.generate.run import GenerateStageConfig
from hone.records import Generation, Task, Verdict, read_records, write_records
from hone.runs import manifest_for
from hone.sample.run import SampleStageConfig, round_prompts, run_sample

# Three sums; the model solves t0 at once, t1 on its second pass, never t2.
TASKS = [Task(id=f"t{i}", kind="math", prompt=f"What is {i} + {i}?", reference=str(2 * i)) for i in range(3)]


class Learner:
    """Answers t0 right always, t1 right from the second pass on (seed > base), t2 never; counts requests."""

    name = "learner"

    def __init__(self, base_seed: int):
        self.base_seed, self.requests = base_seed, []

    def generate(self, requests, params, progress=None):
        for r in requests:
            self.requests.append((r.id, params.seed))
            i = int(r.id[1:])
            right = r.id == "t0" or (r.id == "t1" and params.seed > self.base_seed)
            yield Generation(id=r.id, sample=r.sample, model=self.name, finish_reason="stop",
                             output=f"The answer is {2 * i if right else 2 * i + 1}.")


def _config(n: int = 2, **over) -> SampleStageConfig:
    generate = GenerateStageConfig(params=GenParams(n=n, temperature=1.0, max_new_tokens=8, seed=10),
                                   model_ref={"model": "learner"})
    return SampleStageConfig(generate=generate, resample_unsolved=2, **over)


def test_unsolved_prompts_are_sampled_again_and_every_pass_is_kept(tmp_path):
    write_records(tmp_path / "tasks.jsonl", TASKS)
    model = Learner(base_seed=10)
    result = run_sample(_config(), lambda: model, tmp_path / "tasks.jsonl", tmp_path / "round")
    assert result.report.solved_after_pass == [1, 2, 2] and result.report.solved == 2
    # pass 0: 3 prompts x 2; passes 1 and 2 only the unsolved (t1, t2; then t2), seeds 10, 11, 12
    assert sorted({s for _, s in model.requests}) == [10, 11, 12] and len(model.requests) == 6 + 4 + 2
    samples = read_records(tmp_path / "round" / "samples.jsonl", Generation)
    verdicts = read_records(tmp_path / "round" / "verdicts.jsonl", Verdict)
    keys = [(g.id, g.sample) for g in samples]
    assert len(keys) == len(set(keys)) == 12 and [(v.id, v.sample) for v in verdicts] == keys
    assert {g.sample for g in samples if g.id == "t2"} == set(range(6))  # numbered across passes


def test_a_finished_stage_is_skipped_without_a_model_and_another_setting_needs_restart(tmp_path):
    write_records(tmp_path / "tasks.jsonl", TASKS)
    first = run_sample(_config(), lambda: Learner(10), tmp_path / "tasks.jsonl", tmp_path / "round")

    def no_model():
        raise AssertionError("a finished sample stage must not open the model")

    again = run_sample(_config(), no_model, tmp_path / "tasks.jsonl", tmp_path / "round")
    assert again.skipped and again.report == first.report and again.counts == first.counts
    with pytest.raises(HoneError, match="--restart"):
        run_sample(_config(n=3), lambda: Learner(10), tmp_path / "tasks.jsonl", tmp_path / "round")
    redone = run_sample(_config(n=3, restart=True), lambda: Learner(10), tmp_path / "tasks.jsonl", tmp_path / "round")
    assert not redone.skipped and redone.report.samples == 9 + 6 + 3
    assert manifest_for(tmp_path / "round" / "samples.jsonl").exists()


def test_a_round_samples_its_slice_of_the_pool(tmp_path):
    write_records(tmp_path / "tasks.jsonl", TASKS)
    result = run_sample(_config(prompts_per_round=2, round=2), lambda: Learner(10), tmp_path / "tasks.jsonl",
                        tmp_path / "round")
    assert {g.id for g in result.generations} == {t.id for t in round_prompts(TASKS, 2, 2)} == {"t2", "t0"}
    assert read_records(tmp_path / "round" / "prompts.jsonl", Task) == round_prompts(TASKS, 2, 2)
