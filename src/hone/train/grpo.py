"""Online RL (GRPO) through TRL's GRPOTrainer, with Hone's verifiers as the reward; the same guarantees as SFT.

Data: Task JSONL, the training prompts (the loop's `train_tasks`). Each task becomes one row,
`{"prompt": task.chat(), "task": <the Task record as JSON>}`; the reward functions (hone.train.rewards) read the
task back from its column. Open tasks are left out and counted (no verifier; the LLM judge is not a reward yet),
as are prompts too long to leave `max_completion_length` tokens within `max_length`.

The chat contract holds inside training: the trainer generates from `hone.chat.encode(render_prompt(...))` (the
token ids bench generates from, not TRL's own rendering), stops at the tokens Hone's engines stop at, and the
reward grades the answer text bench would record from the same tokens. `per_device_batch_size` counts
completions: each optimizer step sees per_device_batch_size * gradient_accumulation_steps / num_generations
prompts, each sampled num_generations times. A group whose answers all get the same reward gives no gradient
(TRL's `frac_reward_zero_std`); a model that almost never passes needs larger groups.
"""

from __future__ import annotations

import os
from typing import Any

from hone.chat import encode, render_prompt, stop_token_ids
from hone.errors import HoneError
from hone.records import Task, read_records
from hone.train.callbacks import ProgressFactory
from hone.train.config import GRPOTrainConfig
from hone.train.result import TrainResult
from hone.train.rewards import TASK_COLUMN, RandomReward, VerifierReward, reward_lineage


def grpo_rows(tokenizer: Any, tasks: list[Task], config: GRPOTrainConfig) -> tuple[list[dict[str, Any]],
                                                                                    dict[str, int]]:
    """One row per task a reward can score and whose prompt leaves room for an answer; the others counted."""
    rows, open_dropped, too_long = [], 0, 0
    room = None if config.max_length is None else config.max_length - config.max_completion_length
    for task in tasks:
        if task.kind == "open" and config.reward == "verifier":
            open_dropped += 1
            continue
        if room is not None and len(encode(tokenizer, render_prompt(tokenizer, task.chat()))) > room:
            too_long += 1
            continue
        rows.append({"prompt": task.chat(), TASK_COLUMN: task.model_dump_json()})
    return rows, {"examples": len(rows), "open_dropped": open_dropped, "too_long_dropped": too_long}


def reward_functions(config: GRPOTrainConfig, tokenizer: Any) -> list[Any]:
    if config.reward == "random":
        return [RandomReward(config.random_reward_p or 0.0, config.seed)]
    return [VerifierReward(tokenizer, workers=config.grade_workers, sandbox=config.sandbox)]


def check_rollout_engine(config: GRPOTrainConfig) -> None:
    """Refuse vLLM rollouts, before any model loads (and before a loop's round 0), where they cannot run."""
    if config.rollout_engine == "hf":
        return
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise HoneError(f"rollout_engine {config.rollout_engine!r}: vLLM rollouts need a CUDA GPU and this machine "
                        "has none (use rollout_engine: hf)")
    if importlib.util.find_spec("vllm") is None:
        raise HoneError(f"rollout_engine {config.rollout_engine!r}: vllm is not installed (pip install 'hone[vllm]')")


def rollout_args(config: GRPOTrainConfig, tokenizer: Any) -> dict[str, Any]:
    """GRPOConfig's rollout settings. TRL hands vLLM the prompt token ids `_tokenize_prompts` returns (Hone's chat
    contract) and `generation_kwargs` as SamplingParams, so vLLM stops where Hone's engines stop, as hf does through
    the model's generation config (check_rollout_engine refuses vLLM where it cannot run)."""
    if config.rollout_engine == "hf":
        return {}
    return {"use_vllm": True, "vllm_mode": config.rollout_engine.removeprefix("vllm-"),
            "vllm_server_base_url": config.vllm_server_url,
            "vllm_gpu_memory_utilization": config.vllm_gpu_memory_utilization,
            "generation_kwargs": {"stop_token_ids": stop_token_ids(tokenizer)}}


def _grpo_trainer(model: Any, common: dict[str, Any], rows: list[dict[str, Any]], tokenizer: Any, lora: Any,
                  config: GRPOTrainConfig, rewards: list[Any]):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    if not callable(getattr(GRPOTrainer, "_tokenize_prompts", None)):
        raise HoneError("this TRL version's GRPOTrainer has no _tokenize_prompts; Hone cannot render its prompts "
                        "through the chat contract (use trl 1.16)")

    class ChatContractGRPOTrainer(GRPOTrainer):
        def _tokenize_prompts(self, prompts: list):
            return [encode(tokenizer, render_prompt(tokenizer, p)) for p in prompts], None, {}

    common = {k: v for k, v in common.items() if k != "dataset_num_proc"}
    args = GRPOConfig(
        **common, **rollout_args(config, tokenizer), num_generations=config.num_generations, beta=config.beta,
        max_completion_length=config.max_completion_length, temperature=config.temperature, top_p=config.top_p,
        mask_truncated_completions=config.mask_truncated_completions, scale_rewards=config.scale_rewards,
        loss_type=config.loss_type, shuffle_dataset=True, log_completions=False)
    model.generation_config.eos_token_id = stop_token_ids(tokenizer)  # stop where Hone's engines stop
    return ChatContractGRPOTrainer(model=model, reward_funcs=rewards, args=args, train_dataset=Dataset.from_list(rows),
                                   processing_class=tokenizer, peft_config=lora)


def run_grpo(config: GRPOTrainConfig, tasks_path: str | os.PathLike, base_dir: str | os.PathLike,
             out_dir: str | os.PathLike, *, progress: ProgressFactory | None = None) -> TrainResult:
    """GRPO on the Task JSONL `tasks_path` from the model in `base_dir`; adapter (or model) and lineage in
    `out_dir`. Skips, resumes and refuses exactly like `run_train`; the lineage's `rewards` names the reward
    functions and grader versions, and the reward curve."""
    from hone.train.trainer import run_training

    check_rollout_engine(config)

    def load_rows(tokenizer):
        rows, stats = grpo_rows(tokenizer, read_records(tasks_path, Task), config)
        if not rows:
            raise HoneError(f"{tasks_path}: no task to train on: {stats['open_dropped']} open (no verifier to reward "
                            f"them), {stats['too_long_dropped']} with prompts that leave fewer than "
                            f"max_completion_length={config.max_completion_length} tokens within "
                            f"max_length={config.max_length}")
        return rows, stats

    def make_trainer(model, common, rows, tokenizer, lora):
        return _grpo_trainer(model, common, rows, tokenizer, lora, config, reward_functions(config, tokenizer))

    return run_training(config, tasks_path, base_dir, out_dir, progress, objective="grpo", load_rows=load_rows,
                        make_trainer=make_trainer, rewards=reward_lineage(reward_functions(config, None)))


def nothing_learned(result: TrainResult) -> bool:
    """True when a LoRA run's every update is zero: GRPO never saw a group whose rewards varied (all right or all
    wrong), so there is nothing to merge (the merge refuses a zero update) and the model stays as it was."""
    if result.report.kind != "adapter":
        return False
    from safetensors.torch import load_file

    weights = load_file(result.folder / "adapter_model.safetensors")
    return not any(bool(t.any()) for name, t in weights.items() if "lora_B" in name)
