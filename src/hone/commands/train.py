"""`hone train`: supervised fine-tuning, DPO or GRPO (LoRA or full) from a YAML config and/or flags."""

from __future__ import annotations

from pathlib import Path

import typer

from hone.commands.options import RESTART


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        base: Path = typer.Option(..., help="Full-precision base model folder (safetensors)."),
        data: Path = typer.Option(..., help="sft: `messages` or `prompt`+`completion` JSONL; dpo: PreferencePair "
                                            "JSONL; grpo: Task JSONL (the training prompts)."),
        out: Path = typer.Option(..., "-o", "--out", help="Folder for the adapter (or model) and lineage.json."),
        objective: str = typer.Option("sft", help="sft | dpo | grpo (online RL, Hone's verifiers as the reward)"),
        config: Path = typer.Option(None, help="YAML file of training settings (flags override it)."),
        method: str = typer.Option(None, help="lora | full"),
        max_steps: int = typer.Option(None, help="Optimizer steps (overrides --epochs)."),
        epochs: float = typer.Option(None),
        learning_rate: float = typer.Option(None, "--lr", "--learning-rate"),
        batch_size: int = typer.Option(None, help="Per-device batch size."),
        gradient_accumulation_steps: int = typer.Option(None, "--grad-accum"),
        lora_r: int = typer.Option(None),
        lora_alpha: float = typer.Option(None),
        seed: int = typer.Option(None),
        save_steps: int = typer.Option(None, help="Checkpoint every N steps (resume point after a crash)."),
        packing: bool = typer.Option(None, "--packing/--no-packing", help="sft only."),
        beta: float = typer.Option(None, help="dpo, grpo: strength of the pull towards the reference model."),
        report_to: str = typer.Option(None, help="none | tensorboard | wandb"),
        quantize_base: str = typer.Option(None, help="QLoRA: train LoRA on a 4-bit base, nf4 (bitsandbytes) or "
                                                    "fake-nf4 (the same round trip in plain torch)."),
        allow_quantized_base: bool = typer.Option(None, "--allow-quantized-base",
                                                  help="Required with --quantize-base: QLoRA on purpose."),
        launcher: str = typer.Option(None, help="inline | accelerate | torchrun (Hone runs the launcher itself)."),
        num_processes: int = typer.Option(None, help="--launcher: worker processes on all machines (one per GPU)."),
        accelerate_config: Path = typer.Option(None, help="--launcher accelerate: config file (FSDP, DeepSpeed)."),
        num_machines: int = typer.Option(None, help="--launcher: machines (default: SLURM_NNODES under Slurm, "
                                                    "else 1)."),
        machine_rank: int = typer.Option(None, help="This machine's rank, 0 at --main-process-ip (default: "
                                                    "SLURM_NODEID in an srun step; under sbatch Hone uses srun)."),
        main_process_ip: str = typer.Option(None, help="Rendezvous host (default: the Slurm allocation's first "
                                                       "node)."),
        main_process_port: int = typer.Option(None, help="Rendezvous port (default: free port, or 29500 for a "
                                                         "machine started by hand)."),
        restart: bool = RESTART,
    ) -> None:
        """Train with TRL through the chat contract; resume from the last checkpoint; write lineage.json."""
        import contextlib

        from hone.progress import stage_bar
        from hone.train.launch import inside_launch, line_progress, main_process
        from hone.train.objectives import train as run_objective
        from hone.train.objectives import train_settings

        flags = {"method": method, "max_steps": max_steps, "epochs": epochs, "learning_rate": learning_rate,
                 "per_device_batch_size": batch_size, "gradient_accumulation_steps": gradient_accumulation_steps,
                 "lora_r": lora_r, "lora_alpha": lora_alpha, "seed": seed, "save_steps": save_steps,
                 "packing": packing, "beta": beta, "report_to": report_to, "quantize_base": quantize_base,
                 "allow_quantized_base": allow_quantized_base, "launcher": launcher, "num_processes": num_processes,
                 "accelerate_config": accelerate_config, "num_machines": num_machines, "machine_rank": machine_rank,
                 "main_process_ip": main_process_ip, "main_process_port": main_process_port, "restart": restart}
        cfg = train_settings(objective, config, flags)
        factory = line_progress() if inside_launch() else stage_bar(f"train ({objective})")
        with contextlib.closing(factory):
            result = run_objective(objective, cfg, data, base, out, progress=factory)
        if not main_process():
            return
        if result.skipped:
            typer.echo(f"{out}: already trained from this base, data and settings (skipped)")
            return
        typer.echo(f"wrote {result.report.kind} to {out} ({result.report.summary()})")
