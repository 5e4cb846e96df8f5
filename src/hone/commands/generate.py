"""`hone generate`: answer every task with a local model or an OpenAI-compatible server."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def generate(
        tasks: Path = typer.Option(..., help="Task JSONL."),
        out: Path = typer.Option(..., "-o", "--out", help="Generation JSONL to write."),
        model: str = typer.Option(..., help="Model folder (hf backend) or the served model name (openai)."),
        backend: str = typer.Option("hf", help="hf | openai"),
        base_url: str = typer.Option(None, help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1"),
        n: int = typer.Option(1, "-n", help="Samples per task."),
        temperature: float = typer.Option(0.0, help="0 = greedy."),
        top_p: float = typer.Option(1.0),
        max_new_tokens: int = typer.Option(256),
        batch_size: int = typer.Option(16, help="Batch size (hf) / concurrent requests (openai)."),
        seed: int = typer.Option(0),
        dtype: str = typer.Option(None, help="float32 | bfloat16 | float16 (default: bf16 on GPU, fp32 on CPU)"),
        device: str = typer.Option(None, help="cpu | cuda (default: cuda when available)"),
        trust_remote_code: bool = typer.Option(False, help="Run the model folder's own Python code."),
    ) -> None:
        """Write one Generation per (task, sample); a killed run resumes where it stopped."""
        from hone.errors import HoneError
        from hone.generate.base import GenParams
        from hone.generate.run import run_generate
        from hone.progress import stage_bar

        params = GenParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, n=n,
                           seed=seed, batch_size=batch_size)
        if backend == "hf":
            from hone.generate.hf import HFGenerator
            from hone.models.loading import inspect_model_dir, load_tokenizer

            inspect_model_dir(model)
            load_tokenizer(model, trust_remote_code=trust_remote_code)  # fail before any work is done

            def make():
                return HFGenerator.from_dir(model, dtype=dtype, device=device, trust_remote_code=trust_remote_code)

            ref = {"model": model}
        elif backend == "openai":
            if not base_url:
                raise HoneError("--backend openai needs --base-url")
            from hone.generate.openai_compat import OpenAIGenerator

            def make():
                return OpenAIGenerator(model, base_url, concurrency=batch_size)

            ref = {"served_model": model, "base_url": base_url}
        else:
            raise HoneError(f"unknown backend {backend!r} (use hf or openai)")
        factory = stage_bar("generate")
        try:
            records, skipped = run_generate(make, tasks, out, params, ref, progress_factory=factory)
        finally:
            factory.close()
        if skipped:
            typer.echo(f"{out}: already complete for these inputs and settings (skipped)")
            return
        errors = sum(g.finish_reason == "error" for g in records)
        cut = sum(g.finish_reason == "length" for g in records)
        typer.echo(f"wrote {len(records)} generations to {out} ({cut} hit max_new_tokens, {errors} errors)")
