"""GRPO (`hone train --objective grpo`): Hone's verifier is the reward, the prompts are the chat contract's, the
random-reward control, lineage, and resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from train_support import answering_model_at, one_torch_thread, sum_tasks  # noqa: F401 - a fixture

from hone.chat import encode, render_prompt, stop_token_ids
from hone.errors import HoneError
from hone.records import Task, write_records
from hone.train.grpo import GRPOTrainConfig, grpo_rows, nothing_learned, rollout_args, run_grpo
from hone.train.trainer import _fingerprint

FAST = dict(method="lora", lora_r=8, lora_alpha=16, learning_rate=1e-2, num_generations=8, per_device_batch_size=16,
            max_completion_length=6, logging_steps=1)


@pytest.fixture(scope="module")
def answering_model(tiny_model_dir, tmp_path_factory) -> Path:
    return answering_model_at(tiny_model_dir, tmp_path_factory.mktemp("answering"))


@pytest.fixture
def tasks_file(tmp_path) -> Path:
    path = tmp_path / "tasks.jsonl"
    write_records(path, sum_tasks())
    return path


def test_rows_carry_their_task_and_open_or_long_prompts_are_left_out(tiny_tokenizer, tiny_model_dir, tmp_path):
    tasks = sum_tasks()[:3] + [Task(id="essay", kind="open", prompt="Write a poem."),
                               Task(id="long", kind="math", prompt="one two three " * 60, reference="1")]
    rows, stats = grpo_rows(tiny_tokenizer, tasks, GRPOTrainConfig(max_length=100, max_completion_length=20))
    assert stats == {"examples": 3, "open_dropped": 1, "too_long_dropped": 1}
    assert rows[0]["prompt"] == [{"role": "user", "content": "What is 0 + 0?"}]
    assert Task.model_validate_json(rows[0]["task"]) == tasks[0]

    only_open = tmp_path / "open.jsonl"
    write_records(only_open, tasks[3:4])
    with pytest.raises(HoneError, match=r"open.jsonl: no task to train on: 1 open \(no verifier"):
        run_grpo(GRPOTrainConfig(), only_open, tiny_model_dir, tmp_path / "out")

    with pytest.raises(ValidationError, match="multiple of num_generations"):
        GRPOTrainConfig(num_generations=8, per_device_batch_size=12)
    with pytest.raises(ValidationError, match="random_reward_p"):
        GRPOTrainConfig(reward="random")
    with pytest.raises(ValidationError, match="random_reward_p"):
        GRPOTrainConfig(random_reward_p=0.3)


def test_vllm_rollouts_get_the_chat_contract_and_are_refused_in_one_line_where_they_cannot_run(tiny_tokenizer,
                                                                                                tasks_file, tmp_path):
    from trl import GRPOConfig

    colocate = GRPOTrainConfig(rollout_engine="vllm-colocate", vllm_gpu_memory_utilization=0.5)
    args = rollout_args(colocate, tiny_tokenizer)
    stops = args["generation_kwargs"]["stop_token_ids"]  # vLLM's SamplingParams stop where Hone's engines stop
    assert stops == stop_token_ids(tiny_tokenizer) and tiny_tokenizer.eos_token_id in stops
    assert {k: v for k, v in args.items() if k != "generation_kwargs"} == {
        "use_vllm": True, "vllm_mode": "colocate", "vllm_server_base_url": None, "vllm_gpu_memory_utilization": 0.5}
    trl_args = GRPOConfig(output_dir=str(tmp_path / "args"), bf16=False, use_cpu=True, **args)  # TRL takes them
    assert (trl_args.use_vllm, trl_args.vllm_mode) == (True, "colocate")
    assert trl_args.generation_kwargs == {"stop_token_ids": stops}
    server = GRPOTrainConfig(rollout_engine="vllm-server", vllm_server_url="http://10.0.0.2:8000")
    assert rollout_args(server, tiny_tokenizer)["vllm_server_base_url"] == "http://10.0.0.2:8000"
    assert rollout_args(GRPOTrainConfig(), tiny_tokenizer) == {}  # hf: TRL's own generate, as before
    for bad in ({"rollout_engine": "vllm-server"}, {"vllm_server_url": "http://10.0.0.2:8000"}):
        with pytest.raises(ValidationError, match="vllm_server_url"):
            GRPOTrainConfig(**bad)

    # The engine samples the groups, so it is part of what was learned; where the server runs is not.
    def fingerprint(config: GRPOTrainConfig) -> dict:
        return _fingerprint("grpo", config, "base", "data", None)

    assert fingerprint(colocate) != fingerprint(GRPOTrainConfig(vllm_gpu_memory_utilization=0.5))
    assert fingerprint(server) == fingerprint(server.model_copy(update={"vllm_server_url": "http://10.0.0.3:8000"}))

    import torch

    if not torch.cuda.is_available():  # this machine: refused before any model loads (the base does not exist)
        with pytest.raises(HoneError, match=r"^rollout_engine 'vllm-colocate': vLLM rollouts need a CUDA GPU"):
            run_grpo(colocate, tasks_file, tmp_path / "no-model", tmp_path / "out")
        assert not (tmp_path / "out").exists()


def test_the_verifier_reward_scores_what_bench_would_record_and_the_random_reward_is_seeded(tiny_tokenizer):
    from hone.train.rewards import RandomReward, VerifierReward

    code = Task(id="add", kind="code", prompt="Write add(a, b).", tests="assert add(1, 2) == 3\n",
                meta={"test_style": "asserts"})
    choice = Task(id="pick", kind="choice", prompt="Pick one.\nA. a\nB. b", options=["a", "b"], reference="B")
    essay = Task(id="essay", kind="open", prompt="Write a poem.")
    seven = sum_tasks()[7]  # 1 + 2
    eot = tiny_tokenizer.convert_tokens_to_ids("<|eot_id|>")
    answers = [(seven, "3", True), (seven, "4", True), (seven, "3", False),
               (code, "```python\ndef add(a, b):\n    return a + b\n```", True),
               (code, "```python\ndef add(a, b):\n    return a - b\n```", True),
               (choice, "B", True), (essay, "Roses.", True)]
    ids = [tiny_tokenizer(text, add_special_tokens=False)["input_ids"] + ([eot, 7, 7] if stop else [])
           for _, text, stop in answers]
    reward = VerifierReward(tiny_tokenizer, workers=2)
    scores = reward(prompts=[t.chat() for t, _, _ in answers], completions=[None] * len(answers), completion_ids=ids,
                    task=[t.model_dump_json() for t, _, _ in answers])
    assert scores == [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, None] and reward.calls == 1
    graded = [g for _, g in reward.last]
    assert [g.output for g in graded[:3]] == ["3", "4", "3"]  # cut at the end of turn, as bench records it
    assert [g.finish_reason for g in graded[:3]] == ["stop", "stop", "length"]

    rows = [sum_tasks()[i % 25].model_dump_json() for i in range(400)]
    draw = RandomReward(0.25, seed=3)
    first = draw(prompts=[], completions=[], completion_ids=[], task=rows)
    assert first == draw(prompts=[], completions=[], completion_ids=[], task=rows)
    assert set(first) == {0.0, 1.0} and 0.18 < sum(first) / len(first) < 0.32
    assert first != RandomReward(0.25, seed=4)(prompts=[], completions=[], completion_ids=[], task=rows)


def test_verifier_rewards_train_the_model_from_the_chat_contract_prompts(answering_model, tasks_file, tmp_path,
                                                                          monkeypatch):
    import hone.grade
    from trl import GRPOTrainer

    from hone.models.loading import load_tokenizer

    graded: list[tuple[list, list]] = []
    real_verify_many = hone.grade.verify_many

    def counting_verify_many(items, **kwargs):
        verdicts = real_verify_many(items, **kwargs)
        graded.append((items, verdicts))
        return verdicts

    prompts_generated: list[list[int]] = []
    real_generate = GRPOTrainer._generate_single_turn

    def spying_generate(self, prompt_ids, *args, **kwargs):
        prompts_generated.extend(list(ids) for ids in prompt_ids)
        return real_generate(self, prompt_ids, *args, **kwargs)

    monkeypatch.setattr(hone.grade, "verify_many", counting_verify_many)
    monkeypatch.setattr(GRPOTrainer, "_generate_single_turn", spying_generate)
    cfg = GRPOTrainConfig(**FAST, max_steps=4)
    t0 = time.perf_counter()
    result = run_grpo(cfg, tasks_file, answering_model, tmp_path / "grpo")
    seconds = time.perf_counter() - t0

    tokenizer = load_tokenizer(answering_model)
    rendered = {tuple(encode(tokenizer, render_prompt(tokenizer, t.chat()))) for t in sum_tasks()}
    assert prompts_generated and {tuple(p) for p in prompts_generated} <= rendered

    # One verifier call per step, on every answer of the step; the logged reward is the verifier's mean score.
    log = [row for row in json.loads((result.folder / "train_log.json").read_text()) if "reward" in row]
    assert len(graded) == len(log) == 4
    for (items, verdicts), row in zip(graded, log):
        assert len(items) == cfg.per_device_batch_size
        assert all(g.model == "policy" and g.id == t.id for t, g in items)
        assert row["reward"] == pytest.approx(sum(v.score for v in verdicts) / len(verdicts))
    assert any(0 < sum(v.score for v in verdicts) < len(verdicts) for _, verdicts in graded)

    assert not nothing_learned(result)  # LoRA B starts at zero; varying rewards moved it

    report = result.report
    assert report.objective == "grpo" and result.counts == {"rows": 25, "steps": 4}
    from hone.grade import grader_versions

    assert report.rewards["functions"] == [{"name": "verifier", "sandbox": "strict"}]
    assert report.rewards["graders"] == grader_versions()
    assert report.rewards["first_reward"] == log[0]["reward"] and report.rewards["final_reward"] == log[-1]["reward"]
    assert report.config["num_generations"] == 8 and report.data["open_dropped"] == 0
    assert report.summary().startswith(f"4 steps, reward {log[0]['reward']:.3f} -> {log[-1]['reward']:.3f}")
    print(f"GRPO on the tiny model: {4 / seconds:.2f} steps/s ({seconds:.1f} s for 4 steps of 16 answers)")


def test_random_reward_control_moves_the_model_only_when_its_rewards_vary(answering_model, tasks_file, tmp_path,
                                                                          monkeypatch):
    import hone.grade

    def no_verifier(*args, **kwargs):
        raise AssertionError("the random-reward control must not call the verifier")

    monkeypatch.setattr(hone.grade, "verify_many", no_verifier)
    learned = {}
    for p in (0.0, 0.5):
        cfg = GRPOTrainConfig(**FAST, max_steps=2, reward="random", random_reward_p=p)
        result = run_grpo(cfg, tasks_file, answering_model, tmp_path / f"random-{p}")
        assert result.report.rewards["functions"] == [{"name": "random_reward", "p": p, "seed": 0}]
        learned[p] = not nothing_learned(result)
    assert learned == {0.0: False, 0.5: True}  # all-zero rewards: no group varies, no gradient


def test_a_run_killed_mid_training_resumes_from_its_checkpoint(answering_model, tasks_file, tmp_path):
    import yaml

    settings = {**FAST, "max_steps": 12, "save_steps": 2, "save_total_limit": 1}
    config = tmp_path / "grpo.yaml"
    config.write_text(yaml.safe_dump(settings))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "hone.cli", "train", "--objective", "grpo",
                             "--base", str(answering_model), "--data", str(tasks_file), "-o", str(out),
                             "--config", str(config)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if list((out / "checkpoints").glob("checkpoint-*/trainer_state.json")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"training ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "lineage.json").exists()

    with pytest.raises(HoneError, match="checkpoints of a run with other inputs or settings.*num_generations"):
        run_grpo(GRPOTrainConfig(**{**settings, "num_generations": 4}), tasks_file, answering_model, out)
    result = run_grpo(GRPOTrainConfig(**settings), tasks_file, answering_model, out)
    assert result.report.training.steps == 12 and result.report.training.resumed_from.startswith("checkpoint-")
    log = json.loads((out / "train_log.json").read_text())
    assert [row["step"] for row in log if "reward" in row][-1] == 12


def test_progress_shows_the_reward_the_groups_without_variance_and_kl():
    from transformers import TrainerControl, TrainerState

    from hone.train.callbacks import ProgressBar

    notes: list[str] = []

    def factory(todo: int, done: int):
        def advance(n: int = 1) -> None:
            pass

        advance.note = notes.append
        return advance

    bar, state = ProgressBar(factory), TrainerState(max_steps=4)
    bar.on_step_begin(None, state, TrainerControl())
    bar.on_log(None, state, TrainerControl(), logs={"loss": 0.01, "reward": 0.375, "frac_reward_zero_std": 0.5,
                                                    "kl": 0.0021, "num_tokens": 100.0})
    assert notes == ["reward 0.375, 50% groups without variance, KL 0.0021"]
