"""What every training objective (SFT, DPO) shares: skip, resume, hardware defaults, disk checks, lineage.

A run is identified by its fingerprint (settings that change what is learned, base weights hash, data hash).
The output folder holds the result once `lineage.json` is written, last; `checkpoints/` holds the resume
points of an unfinished run, with the fingerprint they belong to. Runs unchanged under `accelerate launch` or
`torchrun` (DDP, FSDP, DeepSpeed; one machine or several sharing the output folder): only the process of global
rank 0 writes Hone's files.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

from hone.atomic import write_text_atomic
from hone.errors import HoneError
from hone.models.lineage import LINEAGE_FILE, base_origin, read_lineage, write_lineage
from hone.runs import differences
from hone.train.callbacks import ProgressFactory, require_free
from hone.train.config import TrainConfig
from hone.train.result import TRAIN_LOG, TrainResult

CHECKPOINTS = "checkpoints"
RUN_FILE = "run.json"
# Settings that change how a run is kept, not what it learns: they may differ on resume.
_BOOKKEEPING = {"save_steps", "save_total_limit", "keep_checkpoints", "report_to", "logging_steps", "launcher",
                "accelerate_config", "num_machines", "machine_rank", "main_process_ip", "main_process_port",
                "restart", "overwrite", "vllm_server_url", "vllm_gpu_memory_utilization"}

Rows = tuple[list[dict[str, Any]], dict[str, Any]]
# (model, common TrainingArguments keywords, rows, tokenizer, LoRA config or None) -> a transformers Trainer
MakeTrainer = Callable[[Any, dict[str, Any], list[dict[str, Any]], Any, Any], Any]


def _fingerprint(objective: str, config: TrainConfig, base_hash: str, data_hash: str,
                 rewards: dict[str, Any] | None) -> dict[str, Any]:
    fingerprint = {"objective": objective, "config": config.model_dump(exclude=_BOOKKEEPING),
                   "base_sha256": base_hash, "data_sha256": data_hash}
    if rewards is not None:  # online RL: what the answers were scored with (reward functions, grader versions)
        fingerprint["rewards"] = rewards
    return fingerprint


def _differences(a: dict[str, Any], b: dict[str, Any]) -> str:
    """The settings and inputs in which two training fingerprints differ, by the stages' rule (hone.runs)."""
    def shape(fp: dict[str, Any]) -> dict[str, Any]:
        return {"config": {"objective": fp.get("objective"), "rewards": fp.get("rewards"), **(fp.get("config") or {})},
                "inputs": {k: fp.get(f"{k}_sha256") for k in ("base", "data")}}

    return ", ".join(key for _, key, _, _ in differences(shape(a), shape(b))) or "nothing"


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


def _step_of(folder: Path) -> int | None:
    try:
        return int(folder.name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return None


def complete_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint whose trainer state was written (the Trainer writes it last)."""
    best: tuple[int, Path] | None = None
    for d in folder.glob("checkpoint-*") if folder.is_dir() else []:
        step = _step_of(d)
        try:
            json.loads((d / "trainer_state.json").read_text())
        except (ValueError, OSError):
            continue
        if step is not None and (best is None or step > best[0]):
            best = (step, d)
    return best[1] if best else None


def _drop_torn_checkpoints(folder: Path, keep: Path | None) -> None:
    """A checkpoint newer than the last complete one was torn by a kill; the Trainer would resume from it."""
    keep_step = _step_of(keep) if keep else -1
    for d in folder.glob("checkpoint-*") if folder.is_dir() else []:
        step = _step_of(d)
        if step is not None and step > keep_step:
            shutil.rmtree(d)


def _checkpoint_bytes(model: Any) -> int:
    """Weights saved plus AdamW's two fp32 moments of every trainable parameter, with 10% and 16 MB spare."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    saved = sum(p.numel() * p.element_size() for p in trainable)
    return int((saved + sum(p.numel() for p in trainable) * 8) * 1.1) + (16 << 20)


def _device_map(device: str) -> dict[str, Any] | None:
    """On a GPU, weights go straight to this rank's device (no full copy in host RAM per process first); FSDP and
    DeepSpeed ZeRO-3 place and shard the weights themselves."""
    if device != "cuda" or any(os.environ.get(k, "").lower() == "true"
                               for k in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED")):
        return None
    return {"": int(os.environ.get("LOCAL_RANK", "0"))}


def _load_base(base: Path, dtype: str, trust_remote_code: bool, device_map: dict[str, Any] | None):
    from transformers import AutoModelForCausalLM

    from hone.models.loading import torch_dtype

    try:
        return AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype(dtype), use_safetensors=True,
                                                    trust_remote_code=trust_remote_code, device_map=device_map)
    except (OSError, ValueError, RuntimeError) as e:
        raise HoneError(f"{base}: cannot load the model ({str(e).splitlines()[0]})") from None


def _arguments(config: TrainConfig, ckpt_dir: Path, device: str, dtype: str, checkpointing: bool) -> dict:
    """TrainingArguments keywords every objective uses; TRL's GPU-minded defaults replaced from the hardware."""
    return dict(
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
        activation_checkpointing=checkpointing,  # TRL's default is on, even on CPU (15-25% slower there)
        bf16=dtype == "bfloat16",  # TRL's default is on, even on CPU
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
    write_text_atomic(out / TRAIN_LOG, json.dumps(history, indent=1) + "\n")
    write_lineage(out, lineage)


def _reward_curve(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The first and last logged reward means, and the mean share of groups whose rewards did not vary (those give
    no gradient)."""
    rows = [r for r in history if r.get("reward") is not None]
    zero = [r["frac_reward_zero_std"] for r in rows if r.get("frac_reward_zero_std") is not None]
    return {"first_reward": rows[0]["reward"] if rows else None, "final_reward": rows[-1]["reward"] if rows else None,
            "mean_frac_reward_zero_std": sum(zero) / len(zero) if zero else None}


@contextlib.contextmanager
def _library_deprecations_hidden() -> Iterator[None]:
    """PEFT and TRL call transformers APIs that transformers 5 deprecates; the user can do nothing about it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(gradient|activation)_checkpointing.*", category=FutureWarning)
        yield


def run_training(config: TrainConfig, data_path: str | os.PathLike, base_dir: str | os.PathLike,
                 out_dir: str | os.PathLike, progress: ProgressFactory | None, *, objective: str,
                 load_rows: Callable[[Any], Rows], make_trainer: MakeTrainer,
                 rewards: dict[str, Any] | None = None) -> TrainResult:
    """Skip a finished identical run, refuse a folder of another run (`config.restart` discards it instead),
    resume from the last complete checkpoint, train, and write the result with its lineage. `load_rows(tokenizer)`
    and `make_trainer` are the objective; `rewards` describes an online-RL objective's reward functions (it joins
    the fingerprint, and the lineage with the reward curve)."""
    from hone.hashing import file_sha256
    from hone.models.loading import inspect_model_dir, load_tokenizer, weights_sha256
    from hone.runs import package_versions

    base, out, data = Path(base_dir), Path(out_dir), Path(data_path)
    info = inspect_model_dir(base)
    if info.quantized:
        raise HoneError(f"{base}: the weights are stored quantized ({info.describe_quantization()}); train from "
                        "the full-precision base (for QLoRA set quantize_base and allow_quantized_base)")
    if out.resolve() == base.resolve() or base.resolve() in out.resolve().parents:
        raise HoneError(f"{out}: the output folder must not be the base folder or inside it")
    tokenizer = load_tokenizer(base, trust_remote_code=config.trust_remote_code, padding_side="right")
    rows, stats = load_rows(tokenizer)  # bad data fails here, before any hashing or loading
    fingerprint = _fingerprint(objective, config, weights_sha256(base), file_sha256(data), rewards)

    done = read_lineage(out) if (out / LINEAGE_FILE).exists() else None
    if done is not None:
        if done.get("fingerprint") == fingerprint:
            return TrainResult.read(out, skipped=True)
        if not config.restart:
            raise HoneError(f"{out}: already holds a finished model trained with other inputs or settings "
                            f"({_differences(done.get('fingerprint') or {}, fingerprint)} differ); "
                            "choose another output folder, delete it, or pass --restart to replace it")
        shutil.rmtree(out)
    ckpt_dir = out / CHECKPOINTS
    run_file = ckpt_dir / RUN_FILE
    if run_file.exists():
        earlier = json.loads(run_file.read_text())
        if earlier != fingerprint:
            if not config.restart:
                raise HoneError(f"{ckpt_dir}: checkpoints of a run with other inputs or settings "
                                f"({_differences(earlier, fingerprint)} differ); resuming would mix them; "
                                "choose another output folder, delete its checkpoints, or pass --restart")
            shutil.rmtree(ckpt_dir)
    if not rows:
        raise HoneError(f"{data}: no row keeps an answer token within max_length={config.max_length}")
    from hone.train.launch import inside_launch, run_launched

    if config.launcher != "inline" and not inside_launch():
        return TrainResult.read(run_launched(config, objective, data, base, out, progress), skipped=False)
    device, dtype, checkpointing = _hardware(config)

    import transformers
    from transformers.trainer_callback import PrinterCallback

    from hone.train.callbacks import DiskGuard, ProgressBar
    from hone.models.quantize import load_nf4_base, quantize_model_in_place

    transformers.set_seed(config.seed)  # LoRA's initial A matrices are drawn before the Trainer seeds anything
    transformers.logging.set_verbosity_error()
    if config.quantize_base == "nf4":
        model, quantization = load_nf4_base(base, dtype, _device_map(device) or {"": device},
                                            config.trust_remote_code)
    else:
        model = _load_base(base, dtype, config.trust_remote_code, _device_map(device))
        quantization = (quantize_model_in_place(model, config.quantize_base, config.quant_group_size)
                        if config.quantize_base else None)
    with _library_deprecations_hidden():
        trainer = make_trainer(model, _arguments(config, ckpt_dir, device, dtype, checkpointing), rows, tokenizer,
                               _lora_config(config) if config.method == "lora" else None)
    trainer.remove_callback(PrinterCallback)  # Hone keeps the loss history in TRAIN_LOG instead
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
    with _library_deprecations_hidden():
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)

    if trainer.is_world_process_zero():
        require_free(out, _checkpoint_bytes(trainer.model), "the final save")
        history = trainer.state.log_history
        summary = next((r for r in reversed(history) if "train_runtime" in r), {})
        tokens = next((r["num_tokens"] for r in reversed(history) if "num_tokens" in r), None)
        losses = [r["loss"] for r in history if "loss" in r]
        lineage = {
            "kind": "adapter" if config.method == "lora" else "model",
            "objective": objective,
            "base": {"path": str(base.resolve()), "weights_sha256": fingerprint["base_sha256"],
                     "architecture": info.architecture, "dtype": info.dtype, "train_dtype": dtype,
                     "quantization": quantization.model_dump() if quantization else None,
                     "origin": base_origin(base)},
            "data": {"path": str(data.resolve()), "sha256": fingerprint["data_sha256"], **stats},
            "config": config.model_dump(exclude={"restart", "overwrite"}),
            "fingerprint": fingerprint,
            "training": {"steps": trainer.state.global_step, "device": device,
                         "processes": trainer.accelerator.num_processes,
                         "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
                         "mean_loss": summary.get("train_loss"),
                         "runtime_s": summary.get("train_runtime"), "tokens": tokens,
                         "resumed_from": resume.name if resume else None},
            "versions": package_versions(),
        }
        if rewards is not None:
            lineage["rewards"] = {**rewards, **_reward_curve(history)}
        _finalize(trainer, out, lineage)
        if not config.keep_checkpoints and ckpt_dir.exists():
            shutil.rmtree(ckpt_dir)
    trainer.accelerator.wait_for_everyone()
    return TrainResult.read(out, skipped=False)
