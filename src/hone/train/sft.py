"""The `train` stage: supervised fine-tuning (LoRA or full) through TRL's SFTTrainer, resumable, with lineage.

What it guarantees: every row goes through the chat contract (template, EOS, loss on the answer only); the base
is trained in full precision unless a quantized base is asked for explicitly; TRL's GPU-minded defaults (bf16
autocast, gradient checkpointing) are set from the hardware, not inherited; a killed run resumes from its last
complete checkpoint; the output folder only looks finished once `lineage.json` is written, last (hone.train.stage).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from hone.train.callbacks import ProgressFactory


class TrainConfig(BaseModel):
    """Training settings (a YAML mapping or CLI flags). Unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["lora", "full"] = "lora"
    lora_r: int = Field(16, ge=1)
    lora_alpha: float = Field(32.0, gt=0)
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # "all-linear": every attention and MLP projection (every linear layer but the output head).
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    use_rslora: bool = False
    learning_rate: float = Field(2e-4, gt=0)
    lr_scheduler_type: Literal["linear", "cosine", "cosine_with_min_lr", "constant", "constant_with_warmup",
                               "polynomial", "inverse_sqrt"] = "linear"
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides epochs")
    epochs: float = Field(1.0, gt=0)
    per_device_batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    gradient_checkpointing: bool | None = Field(None, description="None: on for GPU, off on CPU (15-25% slower)")
    packing: bool = False
    max_length: int | None = Field(1024, ge=8)
    seed: int = 0
    save_steps: int | None = Field(None, ge=1, description="checkpoint every N steps (None: only the final save)")
    save_total_limit: int | None = Field(2, ge=1)
    keep_checkpoints: bool = False
    logging_steps: int = Field(10, ge=1)
    report_to: Literal["none", "tensorboard", "wandb"] = "none"
    dtype: Literal["float32", "bfloat16", "float16"] | None = Field(None, description="None: bf16 on GPU, fp32 CPU")
    allow_quantized_base: bool = False
    quantize_base: Literal["nf4", "fake-nf4"] | None = Field(
        None, validation_alias=AliasChoices("quantize_base", "quantization"),
        description="QLoRA: nf4 = a bitsandbytes 4-bit base; fake-nf4 = the same round trip in plain torch (CI)")
    quant_group_size: int = Field(64, ge=2)
    trust_remote_code: bool = False
    launcher: Literal["inline", "accelerate"] = Field(
        "inline", description="accelerate: train in `accelerate launch` worker processes (hone.train.launch)")
    num_processes: int = Field(1, ge=1, description="accelerate: worker processes (one per GPU)")
    accelerate_config: Path | None = Field(None, description="accelerate: a config file (FSDP, DeepSpeed, ...)")

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.quantize_base and not self.allow_quantized_base:
            raise ValueError("training on a quantized base (QLoRA) must be asked for explicitly: set "
                             "allow_quantized_base: true (the adapter then only merges into the dequantized base)")
        if self.quantize_base and self.method != "lora":
            raise ValueError("a quantized base can only be trained with method: lora")
        if self.quantize_base == "nf4" and self.quant_group_size != 64:
            raise ValueError("quantize_base nf4 quantizes in blocks of 64 (bitsandbytes); set quant_group_size: 64")
        if self.launcher == "inline" and (self.num_processes > 1 or self.accelerate_config):
            raise ValueError("num_processes and accelerate_config need launcher: accelerate")
        if self.packing and self.max_length is None:
            raise ValueError("packing needs max_length")
        return self


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
              out_dir: str | os.PathLike, progress: ProgressFactory | None = None) -> Path:
    """Train on `data_path` from the model in `base_dir`; write the adapter (or model) and lineage to `out_dir`.

    Data: SFTExample / `messages` JSONL, or prompt/completion JSONL. Skips when `out_dir` already holds the
    result of the same base, data and settings; resumes from the last complete checkpoint in
    `out_dir/checkpoints`; refuses to mix runs with different settings in one folder.
    """
    from hone.train.data import read_conversations, tokenize
    from hone.train.stage import run_training

    def load_rows(tokenizer):
        return tokenize(tokenizer, read_conversations(data_path), config.max_length)

    def make_trainer(model, common, rows, tokenizer, lora):
        return _sft_trainer(model, common, rows, tokenizer, lora, config)

    return run_training(config, data_path, base_dir, out_dir, progress, objective="sft", load_rows=load_rows,
                        make_trainer=make_trainer)
