"""`hone critique`: the local model critiques and rewrites its failed answers; the same judge re-checks them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hone.commands.engine import BACKEND_HELP, ENGINE_CONFIG_HELP, SERVER_COMMAND_HELP
from hone.commands.options import OVERWRITE, RESTART, SANDBOX


def register(app: typer.Typer) -> None:
    @app.command()
    def critique(
        model: Path = typer.Option(..., help="Model folder (the model whose answers failed)."),
        tasks: Path = typer.Option(..., help="Task JSONL."),
        generations: Path = typer.Option(..., help="The model's answers (Generation JSONL)."),
        verdicts: Path = typer.Option(..., help="Their verdicts (Verdict JSONL); only `fail` ones are critiqued."),
        out: Path = typer.Option(..., "-o", "--out", help="Critique JSONL to write."),
        judge: str = typer.Option("verifier", help="The judge that produced --verdicts, used again on the "
                                                   "rewrites: verifier | composite[:LLM] | anthropic[:MODEL] | "
                                                   "openai:MODEL@URL | local:DIR"),
        samples: int = typer.Option(1, help="Critique + rewrite attempts per failed answer."),
        temperature: float = typer.Option(0.0, help="0 = greedy (then --samples must be 1)."),
        top_p: float = typer.Option(1.0),
        max_new_tokens: int = typer.Option(512),
        batch_size: int = typer.Option(16),
        seed: int = typer.Option(0),
        reference_guided: bool = typer.Option(False, help="Show the reference to the model: the records and "
                                                          "report say distillation, not self-critique."),
        round: Optional[int] = typer.Option(None, help="Loop round, recorded in each record."),
        budget_usd: Optional[float] = typer.Option(None, help="Cap on judge spending (LLM judges)."),
        concurrency: int = typer.Option(8, help="Judge calls in flight (LLM judges)."),
        dtype: str = typer.Option(None, help="float32 | bfloat16 | float16"),
        device: str = typer.Option(None, help="cpu | cuda"),
        trust_remote_code: bool = typer.Option(False, help="Run the model folder's own Python code."),
        backend: str = typer.Option(None, help=BACKEND_HELP),
        engine_config: Path = typer.Option(None, help=ENGINE_CONFIG_HELP),
        server_command: str = typer.Option(None, help=SERVER_COMMAND_HELP),
        restart: bool = RESTART,
        overwrite: bool = OVERWRITE,
        sandbox: str = SANDBOX,
    ) -> None:
        """Critique and rewrite each failed answer (never shown the reference unless --reference-guided);
        every rewrite is judged live, and the report gives acceptance and the paired uplift with a 95% CI."""
        from hone.critique.run import CritiqueStageConfig, check_engine, rejudge_with, run_critique
        from hone.critique.summary import format_summary
        from hone.generate.base import GenParams
        from hone.generate.registry import Engine, check_model, load_generate_config, model_ref
        from hone.judge.factory import JudgeSetup
        from hone.progress import stage_bar

        engine = load_generate_config(engine_config).override(
            backend=backend, server_command=server_command, dtype=dtype, device=device,
            trust_remote_code=trust_remote_code or None)
        config = CritiqueStageConfig(
            params=GenParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
                             batch_size=batch_size),
            samples=samples, reference_guided=reference_guided, round=round, model_ref=model_ref(engine, model),
            restart=restart, overwrite=overwrite)
        check_engine(engine)
        check_model(engine, model)  # fail before any work is done
        rejudge = rejudge_with(JudgeSetup(spec=judge, concurrency=concurrency, budget_usd=budget_usd,
                                          sandbox=sandbox), tasks, out.parent)
        with stage_bar("critique") as bar:
            with Engine(engine, model, Path(f"{out}.server.log")) as make:
                result = run_critique(config, make(), rejudge, tasks, generations, verdicts, out, progress=bar)
        if result.skipped:
            typer.echo(f"{out}: already complete for these inputs and settings (skipped)")
        typer.echo(f"wrote {result.counts['attempts']} critiques to {out}")
        typer.echo(format_summary(result.report))
        if result.counts["unfinished"]:
            typer.echo("some attempts ended in errors a re-run may fix (generation or judge API failures): run the "
                       "same command again to redo only those", err=True)
