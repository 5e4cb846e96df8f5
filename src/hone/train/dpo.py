"""Preference training (DPO) through TRL's DPOTrainer on PreferencePair JSONL, with the same guarantees as SFT.

Prompts and answers go through the chat contract: the prompt is rendered exactly as generation sees it, each
answer is the assistant turn plus EOS (`hone.chat.encode_training`), and TRL receives the token ids, so its
own templating (which may add a second BOS, or render the prompt differently) never applies. With LoRA the
reference model is the base with the adapter switched off; for full training TRL loads a frozen copy.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field

from hone.chat import encode, encode_training, render_prompt
from hone.records import PreferencePair, read_records
from hone.train.callbacks import ProgressFactory
from hone.train.config import TrainConfig
from hone.train.result import TrainResult


class DPOTrainConfig(TrainConfig):
    """TrainConfig plus DPO's own settings; a lower learning rate, as preference tuning needs."""

    learning_rate: float = Field(5e-6, gt=0)
    beta: float = Field(0.1, gt=0)
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust"] = "sigmoid"


def tokenize_pairs(tokenizer: Any, pairs: list[PreferencePair],
                   max_length: int | None) -> tuple[list[dict[str, list[int]]], dict[str, int]]:
    """prompt_ids / chosen_ids / rejected_ids per pair; identical answers and prompts that fill max_length are
    dropped and counted (neither can teach a preference)."""
    rows, identical, too_long = [], 0, 0
    for pair in pairs:
        if pair.chosen.strip() == pair.rejected.strip():
            identical += 1
            continue
        prompt = [m.model_dump() for m in pair.prompt]
        prompt_ids = encode(tokenizer, render_prompt(tokenizer, prompt))
        if max_length is not None and len(prompt_ids) >= max_length:
            too_long += 1
            continue
        answers = [encode_training(tokenizer, prompt + [{"role": "assistant", "content": text}])["input_ids"]
                   for text in (pair.chosen, pair.rejected)]
        rows.append({"prompt_ids": prompt_ids, "chosen_ids": answers[0][len(prompt_ids):],
                     "rejected_ids": answers[1][len(prompt_ids):]})
    return rows, {"examples": len(rows), "identical_dropped": identical, "too_long_dropped": too_long}


def _dpo_trainer(model: Any, common: dict[str, Any], rows: list[dict[str, Any]], tokenizer: Any, lora: Any,
                 config: DPOTrainConfig):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    class PreTokenizedDPOTrainer(DPOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset  # already tokenized through hone.chat

    args = DPOConfig(**common, beta=config.beta, loss_type=[config.loss_type], max_length=config.max_length)
    return PreTokenizedDPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                  processing_class=tokenizer, peft_config=lora)


def run_dpo(config: DPOTrainConfig, data_path: str | os.PathLike, base_dir: str | os.PathLike,
            out_dir: str | os.PathLike, *, progress: ProgressFactory | None = None) -> TrainResult:
    """DPO on PreferencePair JSONL from the model in `base_dir`; adapter (or model) and lineage in `out_dir`.
    Skips, resumes and refuses exactly like `run_train`."""
    from hone.train.trainer import run_training

    def load_rows(tokenizer):
        return tokenize_pairs(tokenizer, read_records(data_path, PreferencePair), config.max_length)

    def make_trainer(model, common, rows, tokenizer, lora):
        return _dpo_trainer(model, common, rows, tokenizer, lora, config)

    return run_training(config, data_path, base_dir, out_dir, progress, objective="dpo", load_rows=load_rows,
                        make_trainer=make_trainer)
