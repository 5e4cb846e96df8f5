"""The `train` stage: supervised fine-tuning (LoRA or full) through TRL's SFTTrainer, resumable, with lineage.

What it guarantees: every row goes through the chat contract (template, EOS, loss on the answer only); the base
is trained in full precision unless a quantized base is asked for explicitly; TRL's GPU-minded defaults (bf16
autocast, gradient checkpointing) are set from the hardware, not inherited; a killed run resumes from its last
complete checkpoint; the output folder only looks finished once `lineage.json` is written, last (hone.train.trainer).
"""

from __future__ import annotations

import os
from typing import Any

from hone.train.callbacks import ProgressFactory
from hone.train.config import TrainConfig
from hone.train.result import TrainResult


def _sft_trainer(model: Any, common: dict[str, Any], rows: list[dict[str, Any]], tokenizer: Any, lora: Any,
                 config: TrainConfig):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        **common,
        # Rows arrive tokenized and cut by Hone, with finished labels; TRL's truncation pass would only cost time.
        max_length=config.max_length if config.packing else None,
        packing=config.packing,
    )
    return SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                      peft_config=lora)


def run_train(config: TrainConfig, data_path: str | os.PathLike, base_dir: str | os.PathLike,
              out_dir: str | os.PathLike, *, progress: ProgressFactory | None = None) -> TrainResult:
    """Train on `data_path` from the model in `base_dir`; write the adapter (or model) and lineage to `out_dir`.

    Data: SFTExample / `messages` JSONL, or prompt/completion JSONL. Skips (`skipped`) when `out_dir` already
    holds the result of the same base, data and settings; resumes from the last complete checkpoint in
    `out_dir/checkpoints`; refuses to mix runs with different settings in one folder unless `config.restart`.
    """
    from hone.train.data import read_conversations, tokenize
    from hone.train.trainer import run_training

    def load_rows(tokenizer):
        return tokenize(tokenizer, read_conversations(data_path), config.max_length)

    def make_trainer(model, common, rows, tokenizer, lora):
        return _sft_trainer(model, common, rows, tokenizer, lora, config)

    return run_training(config, data_path, base_dir, out_dir, progress, objective="sft", load_rows=load_rows,
                        make_trainer=make_trainer)
