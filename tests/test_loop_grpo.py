"""A GRPO round in the loop (`train.objective: grpo`), on the tiny model: the verifiers reward, the merge verifies,
the gate (with its guards) decides, a killed loop resumes its training, and the random-reward control runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from train_support import answering_model_at, one_torch_thread, sum_tasks  # noqa: F401 - a fixture

from hone.config import load_config
from hone.errors import HoneError
from hone.loop import _config_json, run_loop
from hone.loop_config import LoopConfig
from hone.records import Task, read_tasks, write_records
from hone.round import RoundLayout
from hone.train.grpo import GRPOTrainConfig

GRPO = dict(objective="grpo", lora_r=8, lora_alpha=16, learning_rate=1e-2, num_generations=8,
            per_device_batch_size=16, max_completion_length=6, logging_steps=1, max_steps=3)


@pytest.fixture(scope="module")
def loop_files(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    """The answering model, 15 of the one-digit sums to train on, the other 10 held out (the trained suite), and
    two-digit sums as a guard suite."""
    out = tmp_path_factory.mktemp("grpo-loop")
    sums = sum_tasks()
    paths = {"base": answering_model_at(tiny_model_dir, out / "answering"),
             "train": out / "train.jsonl", "sums": out / "sums.jsonl", "guard": out / "guard.jsonl"}
    write_records(paths["train"], sums[::5] + sums[1::5] + sums[2::5])
    write_records(paths["sums"], sums[3::5] + sums[4::5])
    write_records(paths["guard"], [Task(id=f"big-{a}", kind="math", prompt=f"What is {a} + {a + 1}?",
                                        reference=str(2 * a + 1)) for a in range(10, 16)])
    return paths


def _config(files: dict[str, Path], tmp_path: Path, **over) -> Path:
    raw = {"base_model": str(files["base"]), "train_tasks": str(files["train"]),
           "heldout": {"sums": str(files["sums"]), "guard": str(files["guard"])}, "rounds": 1,
           "sample": {"prompts_per_round": 10}, "bench": {"max_new_tokens": 6},
           "gate": {"tolerance": 0.5, "trained_suites": ["sums"], "guard_tolerance": 0.5, "stop_tolerance": 0.5},
           "train": dict(GRPO)}
    for key, value in over.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) and key in raw else value
    path = tmp_path / "loop.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_grpo_round_rewards_with_the_verifiers_merges_with_proof_and_the_gate_decides(loop_files, tmp_path,
                                                                                        monkeypatch):
    import hone.grade
    from hone.train.rewards import POLICY

    rewarded: list[int] = []
    real_verify_many = hone.grade.verify_many

    def counting_verify_many(items, **kwargs):
        rewarded.extend(1 for _, g in items if g.model == POLICY)  # answers sampled inside training
        return real_verify_many(items, **kwargs)

    monkeypatch.setattr(hone.grade, "verify_many", counting_verify_many)
    config = load_config(_config(loop_files, tmp_path), LoopConfig)
    assert config.round_kind == "grpo" and isinstance(config.train, GRPOTrainConfig)
    run = tmp_path / "run"
    summary = run_loop(config, run, say=lambda m: None)

    r0, r1 = summary.rounds
    assert r1.kind == "grpo" and r1.trained and r1.rl is not None and r1.rl.learned
    assert r1.rl.prompts == 10 and r1.rl.rows == 10 and r1.rl.steps == 3
    assert r1.rl.rewards == [{"name": "verifier", "sandbox": "strict"}]
    assert len(rewarded) == 3 * 16 == r1.rl.answers  # every answer of every step went through Hone's verifiers
    assert r1.judge.name == "verifier" and r1.judge.calls == 3 * 16
    assert len(r1.rl.reward_curve) == 3 and all(0 <= r <= 1 for r in r1.rl.reward_curve)
    layout = RoundLayout(run, 1)
    assert [t.id for t in read_tasks(layout.prompts)] == [t.id for t in read_tasks(loop_files["train"])][:10]

    merge = layout.merge_report()
    assert merge.status == "verified"
    assert layout.train_report().objective == "grpo"
    gate = layout.gate_decision()
    assert gate.promoted == r1.promoted and gate.reason == r1.reason
    assert gate.guards == r1.guards == {"suites": ["guard"], "tolerance": 0.5}
    assert set(gate.stop_rates["before"]) == {"sums", "guard"} and gate.stop_rates["tolerance"] == 0.5
    assert gate.stop_rates["before"]["sums"] == r0.suites["sums"].stop_rate is not None
    assert gate.stop_rates["after"]["sums"] == r1.suites["sums"].stop_rate
    assert summary.final_model == (str(layout.model) if r1.promoted else str(config.base_model))

    from hone.report.status import render_status, run_status

    status = run_status(run)
    assert [s["stage"] for s in status["rounds"][1]["stages"]][:3] == ["prompts", "train", "merge + verify"]
    assert "stops" in render_status(status)


def test_a_loop_killed_mid_training_resumes_the_grpo_run_from_its_checkpoint(loop_files, tmp_path):
    cfg = _config(loop_files, tmp_path, train={"max_steps": 8, "save_steps": 2, "save_total_limit": 1})
    run = tmp_path / "run"
    args = [sys.executable, "-m", "hone.cli", "loop", "--config", str(cfg), "-o", str(run)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoints = RoundLayout(run, 1).adapter / "checkpoints"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if list(checkpoints.glob("checkpoint-*/trainer_state.json")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the loop ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "summary.json").exists() and not (RoundLayout(run, 1).adapter / "lineage.json").exists()
    bench0 = RoundLayout(run, 0).bench_suite("sums")[0]
    kept = bench0.stat().st_mtime_ns

    done = subprocess.run(args, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert bench0.stat().st_mtime_ns == kept  # round 0 was not benchmarked again
    trained = RoundLayout(run, 1).train_report().training
    assert trained.steps == 8 and trained.resumed_from.startswith("checkpoint-")  # not from step 0
    record = json.loads((run / "summary.json").read_text())["rounds"][1]
    assert record["rl"]["steps"] == 8 and len(record["rl"]["reward_curve"]) == 8


def test_the_random_reward_control_runs_a_round_at_round_0s_pass_rate(loop_files, tmp_path, monkeypatch):
    from hone.train.rewards import VerifierReward

    def no_verifier(*args, **kwargs):
        raise AssertionError("the random-reward control must not reward with the verifier")

    monkeypatch.setattr(VerifierReward, "__call__", no_verifier)
    config = load_config(_config(loop_files, tmp_path, control="random-reward"), LoopConfig)
    summary = run_loop(config, tmp_path / "run", say=lambda m: None)
    r0, r1 = summary.rounds
    p = round(r0.suites["sums"].correct / r0.suites["sums"].n, 4)  # the trained suite only, not the guard
    assert r1.rl.rewards == [{"name": "random_reward", "p": p, "seed": 0}]
    lineage = RoundLayout(tmp_path / "run", 1).train_report()
    assert lineage.config["reward"] == "random" and lineage.config["random_reward_p"] == p
    assert r1.rl.learned == (0 < p < 1) and r1.trained == r1.rl.learned
    assert r1.rl.answers == 3 * 16 and r1.judge.calls == 0  # rewarded at random, not verified
    if not r1.rl.learned:
        assert r1.reason == "no group's rewards varied; the model stays"


def test_the_objective_selects_the_train_section_and_controls_are_refused_where_they_do_not_apply(loop_files,
                                                                                                  tmp_path):
    sft = _config(loop_files, tmp_path, train={"objective": "sft", "learning_rate": 1e-3, "max_steps": 3},
                  gate={})
    raw = yaml.safe_load(sft.read_text())
    for key in ("num_generations", "max_completion_length"):  # GRPO's own
        raw["train"].pop(key)
    sft.write_text(yaml.safe_dump(raw))
    explicit = load_config(sft, LoopConfig)
    raw["train"].pop("objective")
    sft.write_text(yaml.safe_dump(raw))
    omitted = load_config(sft, LoopConfig)
    assert explicit.round_kind == omitted.round_kind == "sft" and type(omitted.train).__name__ == "TrainConfig"
    assert _config_json(explicit) == _config_json(omitted) and "objective" not in _config_json(omitted)["train"]

    grpo = load_config(_config(loop_files, tmp_path), LoopConfig)
    again = LoopConfig.model_validate_json(json.dumps(_config_json(grpo)))  # loop_config.json reads back as GRPO
    assert again.round_kind == "grpo" and again.train == grpo.train

    raw["control"] = "random-reward"
    sft.write_text(yaml.safe_dump(raw))
    with pytest.raises(HoneError, match=r"loop.yaml:\d+: key `control`: random-reward is GRPO's control arm: it "
                                        r"needs train.objective: grpo"):
        load_config(sft, LoopConfig)
    with pytest.raises(HoneError, match=r"loop.yaml:\d+: key `train.objective`: Input should be 'sft' or 'grpo'"):
        load_config(_config(loop_files, tmp_path, train={"objective": "dpo"}), LoopConfig)
    with pytest.raises(HoneError, match=r"loop.yaml:\d+: key `train.beta`"):
        load_config(_config(loop_files, tmp_path, train={"beta": -1}), LoopConfig)
    with pytest.raises(HoneError, match=r"the loop trains LoRA adapters and merges them with proof"):
        load_config(_config(loop_files, tmp_path, train={"method": "full"}), LoopConfig)
    with pytest.raises(HoneError, match=r"key `control`: unverified is the sft rounds' control"):
        load_config(_config(loop_files, tmp_path, control="unverified"), LoopConfig)
    with pytest.raises(HoneError, match=r"loop.yaml:\d+: key `gate.trained_suites`: 'math' is not a held-out suite"):
        load_config(_config(loop_files, tmp_path, gate={"trained_suites": ["math"]}), LoopConfig)

    import torch

    if not torch.cuda.is_available():  # vLLM rollouts on a machine without a GPU: one line before round 0
        vllm = load_config(_config(loop_files, tmp_path, train={"rollout_engine": "vllm-colocate"}), LoopConfig)
        with pytest.raises(HoneError, match=r"^rollout_engine 'vllm-colocate': vLLM rollouts need a CUDA GPU"):
            run_loop(vllm, tmp_path / "vllm-run", say=lambda _: None)
        assert not (tmp_path / "vllm-run" / "round-0").exists()
