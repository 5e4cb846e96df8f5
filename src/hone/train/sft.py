"""The `train` stage: supervised fine-tuning (LoRA or full) through TRL's SFTTrainer, resumable, with lineage.

What it guarantees: every row goes through the chat contract (template, EOS, loss on the answer only); the base
is trained in full precision unless a quantized base is asked for explicitly; TRL's GPU-minded defaults (bf16
autocast, gradient checkpointing) are set from the hardware, not inherited; a killed run resumes from its last
complete checkpoint; the output folder only looks finished once `lineage.json` is written, last.
Runs unchanged under `accelerate launch` (DDP, FSDP, DeepSpeed): only the main process writes Hone's files.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hone.atomic import write_text_atomic
from hone.errors import HoneError
from hone.train.callbacks import ProgressFactory, require_free
from hone.train.lineage import LINEAGE_FILE, read_lineage, write_lineage

CHECKPOINTS = "checkpoints"
RUN_FILE = "run.json"


class TrainConfig(BaseModel):
    """Training settings (YAML `train:` section or CLI flags). Unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["lora", "full"] = "lora"
    lora_r: int = Field(16, ge=1)
    lora_alpha: float = Field(32.0, gt=0)
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # "all-linear": every attention and MLP projection (every linear layer but the output head).
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    use_rslora: bool = False
    learning_rate: float = Field(2e-4, gt=0)
    lr_scheduler_type: str = "linear"
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
    quantize_base: Literal["fake-nf4"] | None = None
    quant_group_size: int = Field(64, ge=2)
    trust_remote_code: bool = False

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.quantize_base and not self.allow_quantized_base:
            raise ValueError("training on a quantized base (QLoRA) must be asked for explicitly: set "
                             "allow_quantized_base: true (the adapter then only merges into the dequantized base)")
        if self.quantize_base and self.method != "lora":
            raise ValueError("a quantized base can only be trained with method: lora")
        if self.packing and self.max_length is None:
            raise ValueError("packing needs max_length")
        return self


# Settings that change how a run is kept, not what it learns: they may differ on resume.
_BOOKKEEPING = {"save_steps", "save_total_limit", "keep_checkpoints", "report_to", "logging_steps"}


def _fingerprint(config: TrainConfig, base_hash: str, data_hash: str) -> dict[str, Any]:
    return {"config": config.model_dump(exclude=_BOOKKEEPING), "base_sha256": base_hash, "data_sha256": data_hash}


def _differences(a: dict[str, Any], b: dict[str, Any]) -> str:
    keys = [k for k in sorted(set(a["config"]) | set(b["config"])) if a["config"].get(k) != b["config"].get(k)]
    keys += [k for k in ("base_sha256", "data_sha256") if a.get(k) != b.get(k)]
    return ", ".join(keys) or "nothing"


def _hardware(config: TrainConfig) -> tuple[str, str, bool]:
    """(device, dtype, gradient checkpointing): bf16 + checkpointing on GPU, fp32 without on CPU."""
    import torch

    from hone.models.loading import default_dtype

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = config.dtype or default_dtype(device)
    if device == "cpu" and dtype == "float16":
        raise HoneError("dtype float16 needs a GPU; on CPU train in float32")
    checkpointing = config.gradient_checkpointing
    if checkpointing is None:
        checkpointing = device != "cpu"
    return device, dtype, checkpointing


def complete_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint whose trainer state was written (the Trainer writes it last)."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    best: tuple[int, Path] | None = None
    if not folder.is_dir():
        return None
    for d in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        try:
            step = int(d.name.rsplit("-", 1)[1])
            json.loads((d / "trainer_state.json").read_text())
        except (ValueError, OSError):
            continue
        if best is None or step > best[0]:
            best = (step, d)
    return best[1] if best else None


def _drop_torn_checkpoints(folder: Path, keep: Path | None) -> None:
    """A checkpoint newer than the last complete one was torn by a kill; the Trainer would resume from it."""
    if not folder.is_dir():
        return
    keep_step = int(keep.name.rsplit("-", 1)[1]) if keep else -1
    for d in folder.glob("checkpoint-*"):
        try:
            step = int(d.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if step > keep_step:
            shutil.rmtree(d)


def _checkpoint_bytes(model: Any) -> int:
    """Weights saved plus AdamW's two fp32 moments of every trainable parameter, with 10% and 16 MB spare."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    saved = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return int((saved + trainable * 8) * 1.1) + (16 << 20)


def _load_base(base: Path, dtype: str, trust_remote_code: bool):
    from transformers import AutoModelForCausalLM

    from hone.models.loading import torch_dtype

    try:
        return AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype(dtype), use_safetensors=True,
                                                    trust_remote_code=trust_remote_code)
    except (OSError, ValueError, RuntimeError) as e:
        raise HoneError(f"{base}: cannot load the model ({str(e).splitlines()[0]})") from None


def _sft_args(config: TrainConfig, ckpt_dir: Path, device: str, dtype: str, checkpointing: bool):
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(ckpt_dir),
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        max_steps=config.max_steps or -1,
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.per_device_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        activation_checkpointing=checkpointing,  # SFTConfig's default is on, even on CPU
        bf16=dtype == "bfloat16",
        fp16=dtype == "float16",
        seed=config.seed,
        data_seed=config.seed,
        save_strategy="steps" if config.save_steps else "no",
        save_steps=config.save_steps or 500,
        save_total_limit=config.save_total_limit,
        logging_steps=config.logging_steps,
        report_to=[] if config.report_to == "none" else [config.report_to],
        eval_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=device != "cpu",
        use_cpu=device == "cpu",  # also what makes several CPU processes join one gloo group
        ddp_find_unused_parameters=False,
        # Rows are tokenized and cut by Hone; TRL's own truncation pass would only cost time.
        max_length=config.max_length if config.packing else None,
        packing=config.packing,
        completion_only_loss=None,
        dataset_num_proc=None,
    )


def _lora_config(config: TrainConfig):
    from peft import LoraConfig

    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=config.target_modules, use_rslora=config.use_rslora, bias="none",
                      task_type="CAUSAL_LM")


def _finalize(trainer: Any, out: Path, lineage: dict[str, Any]) -> None:
    """Save into a hidden folder, move the files in, write lineage.json last: a torn save never looks finished."""
    partial = out / ".final.partial"
    if partial.exists():
        shutil.rmtree(partial)
    trainer.save_model(str(partial))
    (partial / "training_args.bin").unlink(missing_ok=True)  # a pickle; the lineage holds the settings
    for f in sorted(partial.iterdir()):
        os.replace(f, out / f.name)
    partial.rmdir()
    history = [row for row in trainer.state.log_history if "loss" in row or "train_runtime" in row]
    write_text_atomic(out / "train_log.json", json.dumps(history, indent=1) + "\n")
    write_lineage(out, lineage)


def run_train(config: TrainConfig, data_path: str | os.PathLike, base_dir: str | os.PathLike,
              out_dir: str | os.PathLike, progress: ProgressFactory | None = None) -> Path:
    """Train on `data_path` from the model in `base_dir`; write the adapter (or model) and lineage to `out_dir`.

    Skips when `out_dir` already holds the result of the same base, data and settings; resumes from the last
    complete checkpoint in `out_dir/checkpoints`; refuses to mix runs with different settings in one folder.
    """
    from hone.hashing import file_sha256
    from hone.models.loading import inspect_model_dir, load_tokenizer, weights_sha256
    from hone.runs import package_versions
    from hone.train.data import read_conversations, tokenize

    base, out, data = Path(base_dir), Path(out_dir), Path(data_path)
    info = inspect_model_dir(base)
    if info.quantized:
        raise HoneError(f"{base}: the weights are stored quantized ({info.describe_quantization()}); train from "
                        "the full-precision base (for QLoRA set quantize_base and allow_quantized_base)")
    if out.resolve() == base.resolve() or base.resolve() in out.resolve().parents:
        raise HoneError(f"{out}: the output folder must not be the base folder or inside it")
    conversations = read_conversations(data)
    tokenizer = load_tokenizer(base, trust_remote_code=config.trust_remote_code, padding_side="right")
    fingerprint = _fingerprint(config, weights_sha256(base), file_sha256(data))

    done = read_lineage(out) if (out / LINEAGE_FILE).exists() else None
    if done is not None:
        if done.get("fingerprint") == fingerprint:
            return out
        raise HoneError(f"{out}: already holds a finished model trained with other inputs or settings "
                        f"({_differences(done.get('fingerprint') or {'config': {}}, fingerprint)} differ); "
                        "choose another output folder or delete it")
    ckpt_dir = out / CHECKPOINTS
    run_file = ckpt_dir / RUN_FILE
    if run_file.exists():
        earlier = json.loads(run_file.read_text())
        if earlier != fingerprint:
            raise HoneError(f"{ckpt_dir}: checkpoints of a run with other inputs or settings "
                            f"({_differences(earlier, fingerprint)} differ); resuming would mix them; "
                            "choose another output folder or delete its checkpoints")

    rows, stats = tokenize(tokenizer, conversations, config.max_length)
    if not rows:
        raise HoneError(f"{data}: no row keeps an answer token within max_length={config.max_length}")
    device, dtype, checkpointing = _hardware(config)

    import transformers
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTTrainer

    from hone.train.callbacks import DiskGuard, ProgressBar
    from hone.train.quantize import quantize_model_in_place

    transformers.set_seed(config.seed)  # LoRA's initial A matrices are drawn before the Trainer seeds anything
    transformers.logging.set_verbosity_error()
    model = _load_base(base, dtype, config.trust_remote_code)
    quantization = (quantize_model_in_place(model, config.quantize_base, config.quant_group_size)
                    if config.quantize_base else None)
    args = _sft_args(config, ckpt_dir, device, dtype, checkpointing)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         peft_config=_lora_config(config) if config.method == "lora" else None)
    trainer.remove_callback(PrinterCallback)  # Hone keeps the loss history in train_log.json instead
    trainer.add_callback(DiskGuard(ckpt_dir, _checkpoint_bytes(trainer.model)))
    if progress is not None:
        trainer.add_callback(ProgressBar(progress))

    if trainer.is_world_process_zero():
        _drop_torn_checkpoints(ckpt_dir, complete_checkpoint(ckpt_dir))
        if config.save_steps:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(run_file, json.dumps(fingerprint, indent=1, sort_keys=True) + "\n")
    trainer.accelerator.wait_for_everyone()
    resume = complete_checkpoint(ckpt_dir)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)

    if trainer.is_world_process_zero():
        require_free(out, _checkpoint_bytes(trainer.model), "the final save")
        summary = next((r for r in reversed(trainer.state.log_history) if "train_runtime" in r), {})
        tokens = next((r["num_tokens"] for r in reversed(trainer.state.log_history) if "num_tokens" in r), None)
        losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
        lineage = {
            "kind": "adapter" if config.method == "lora" else "model",
            "base": {"path": str(base.resolve()), "weights_sha256": fingerprint["base_sha256"],
                     "architecture": info.architecture, "dtype": info.dtype, "train_dtype": dtype,
                     "quantization": quantization.model_dump() if quantization else None},
            "data": {"path": str(data.resolve()), "sha256": fingerprint["data_sha256"], **stats},
            "config": config.model_dump(),
            "fingerprint": fingerprint,
            "training": {"steps": trainer.state.global_step, "device": device,
                         "processes": trainer.accelerator.num_processes,
                         "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
                         "mean_loss": summary.get("train_loss"),
                         "runtime_s": summary.get("train_runtime"), "tokens": tokens,
                         "resumed_from": resume.name if resume else None},
            "versions": package_versions(),
        }
        _finalize(trainer, out, lineage)
        if not config.keep_checkpoints and ckpt_dir.exists():
            shutil.rmtree(ckpt_dir)
    trainer.accelerator.wait_for_everyone()
    return out
