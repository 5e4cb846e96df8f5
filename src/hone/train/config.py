"""`TrainConfig`: every training setting (a YAML mapping or CLI flags), shared by SFT, DPO, their common trainer
(hone.train.trainer), the launcher and the loop, and `GRPOTrainConfig` (GRPO's own settings on top); their own
module so none of them imports another (or a trainer) to reach them: the loop's config names both."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator

from hone.stage_contract import StageConfig


class TrainConfig(StageConfig):
    """Training settings (a YAML mapping or CLI flags). Unknown keys are an error."""

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
    launcher: Literal["inline", "accelerate", "torchrun"] = Field(
        "inline", description="accelerate | torchrun: train in launched worker processes (hone.train.launch)")
    num_processes: int = Field(1, ge=1, description="worker processes on all machines together (one per GPU)")
    accelerate_config: Path | None = Field(None, description="accelerate: a config file (FSDP, DeepSpeed, ...)")
    # Several machines (hone.train.cluster): None = from Slurm's environment inside an allocation.
    num_machines: int | None = Field(None, ge=1, description="None: SLURM_NNODES in a Slurm allocation, else 1")
    machine_rank: int | None = Field(None, ge=0, description="None: SLURM_NODEID in an srun step; under sbatch "
                                     "Hone starts every node itself with srun")
    main_process_ip: str | None = Field(None, description="None: the allocation's first node under Slurm")
    main_process_port: int | None = Field(None, ge=1, le=65535, description="None: a free port (one machine, "
                                          "or srun from the first node), else 29500")

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.quantize_base and not self.allow_quantized_base:
            raise ValueError("training on a quantized base (QLoRA) must be asked for explicitly: set "
                             "allow_quantized_base: true (the adapter then only merges into the dequantized base)")
        if self.quantize_base and self.method != "lora":
            raise ValueError("a quantized base can only be trained with method: lora")
        if self.quantize_base == "nf4" and self.quant_group_size != 64:
            raise ValueError("quantize_base nf4 quantizes in blocks of 64 (bitsandbytes); set quant_group_size: 64")
        if self.launcher == "inline" and (self.num_processes > 1 or self.accelerate_config or
                                          (self.num_machines or 1) > 1):
            raise ValueError("num_processes, num_machines and accelerate_config need launcher: accelerate "
                             "(or torchrun)")
        if self.launcher == "torchrun" and self.accelerate_config:
            raise ValueError("accelerate_config needs launcher: accelerate (torchrun runs DDP)")
        if self.packing and self.max_length is None:
            raise ValueError("packing needs max_length")
        return self


class GRPOTrainConfig(TrainConfig):
    """TrainConfig plus GRPO's own settings. `reward: random` is the control arm: a Bernoulli reward with
    probability `random_reward_p` (set it to the base's pass rate on these prompts), blind to the answer."""

    learning_rate: float = Field(1e-5, gt=0)
    num_generations: int = Field(8, ge=2, description="answers sampled per prompt (the group)")
    beta: float = Field(0.001, ge=0.0, description="KL penalty towards the base (0: no reference model)")
    max_completion_length: int = Field(256, ge=1)
    temperature: float = Field(1.0, gt=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    mask_truncated_completions: bool = Field(
        True, description="answers that hit max_completion_length without ending their turn teach nothing")
    scale_rewards: Literal["group", "batch", "none"] = "group"
    loss_type: Literal["dapo", "grpo", "dr_grpo", "bnpo"] = "dapo"
    reward: Literal["verifier", "random"] = "verifier"
    random_reward_p: float | None = Field(None, ge=0.0, le=1.0)
    grade_workers: int | None = Field(None, ge=1, description="code answers graded in parallel (None: CPU count)")
    sandbox: Literal["strict", "weak"] = "strict"
    rollout_engine: Literal["hf", "vllm-colocate", "vllm-server"] = Field(
        "hf", description="who samples the groups: TRL's transformers generate (hf, CPU or GPU), vLLM inside each "
        "training process (vllm-colocate) or a `trl vllm-serve` server at vllm_server_url (vllm-server); vLLM needs "
        "a CUDA GPU and gets the chat contract's prompt token ids and stop tokens")
    vllm_server_url: str | None = Field(None, description="vllm-server: the `trl vllm-serve` address")
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0.0, le=1.0, description="vllm-colocate: vLLM's GPU share")

    @model_validator(mode="after")
    def _check_grpo(self) -> "GRPOTrainConfig":
        if self.packing:
            raise ValueError("packing does not apply to GRPO (the trainer builds its batches from its own samples)")
        completions = self.per_device_batch_size * self.gradient_accumulation_steps * self.num_processes
        if completions % self.num_generations:
            raise ValueError(f"per_device_batch_size * gradient_accumulation_steps * num_processes ({completions}) "
                             f"must be a multiple of num_generations ({self.num_generations}): a step holds whole "
                             "groups")
        if (self.rollout_engine == "vllm-server") != (self.vllm_server_url is not None):
            raise ValueError("vllm_server_url is where rollout_engine vllm-server finds `trl vllm-serve`: set it with "
                             "vllm-server, and only then")
        if (self.reward == "random") != (self.random_reward_p is not None):
            raise ValueError("random_reward_p is the random-reward control's probability: set it with reward: random "
                             "(to the base's pass rate on these prompts), and only then")
        return self
