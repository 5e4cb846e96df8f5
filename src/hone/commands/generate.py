"""`hone generate`: answer every task with a local model, through any engine of hone.generate.registry."""

from __future__ import annotations

from pathlib import Path

import typer

from hone.commands.engine import BACKEND_HELP, ENGINE_CONFIG_HELP, SERVER_COMMAND_HELP
from hone.commands.options import OVERWRITE, RESTART


def register(app: typer.Typer) -> None:
    @app.command()
    def generate(
        tasks: Path = typer.Option(..., help="Task JSONL."),
        out: Path = typer.Option(..., "-o", "--out", help="Generation JSONL to write."),
        model: str = typer.Option(..., help="Model folder, or the served model name (--backend openai)."),
        backend: str = typer.Option(None, help=BACKEND_HELP),
        engine_config: Path = typer.Option(None, help=ENGINE_CONFIG_HELP),
        server_command: str = typer.Option(None, help=SERVER_COMMAND_HELP),
        concurrency: int = typer.Option(None, help="Requests in flight (server, openai)."),
        base_url: str = typer.Option(None, help="--backend openai: the server, e.g. http://127.0.0.1:8000/v1"),
        n: int = typer.Option(1, "-n", help="Samples per task."),
        temperature: float = typer.Option(0.0, help="0 = greedy."),
        top_p: float = typer.Option(1.0),
        max_new_tokens: int = typer.Option(256),
        batch_size: int = typer.Option(16, help="Batch size (hf)."),
        seed: int = typer.Option(0),
        dtype: str = typer.Option(None, help="float32 | bfloat16 | float16 (default: bf16 on GPU, fp32 on CPU)"),
        device: str = typer.Option(None, help="cpu | cuda (default: cuda when available)"),
        trust_remote_code: bool = typer.Option(False, help="Run the model folder's own Python code."),
        restart: bool = RESTART,
        overwrite: bool = OVERWRITE,
    ) -> None:
        """Write one Generation per (task, sample); a killed run resumes where it stopped."""
        from hone.generate.base import GenParams
        from hone.generate.registry import Engine, check_model, load_generate_config, model_ref
        from hone.generate.run import GenerateStageConfig, run_generate
        from hone.progress import stage_bar

        engine = load_generate_config(engine_config).override(
            backend=backend, server_command=server_command, concurrency=concurrency, base_url=base_url,
            dtype=dtype, device=device, trust_remote_code=trust_remote_code or None)
        config = GenerateStageConfig(
            params=GenParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, n=n, seed=seed,
                             batch_size=batch_size),
            model_ref=model_ref(engine, model), restart=restart, overwrite=overwrite)
        check_model(engine, model)  # fail before any work is done
        with stage_bar("generate") as bar:
            with Engine(engine, model, Path(f"{out}.server.log")) as make:
                result = run_generate(config, make, tasks, out, progress=bar)
        if result.skipped:
            typer.echo(f"{out}: already complete for these inputs and settings (skipped)")
            return
        c = result.counts
        typer.echo(f"wrote {c['generations']} generations to {out} ({c['length']} hit max_new_tokens, "
                   f"{c['errors']} errors)")
