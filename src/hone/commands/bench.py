"""`hone bench`: ground-truth accuracy per suite and category, and win/tie/loss against a reference."""

from __future__ import annotations

from pathlib import Path

import typer

from hone.commands.engine import BACKEND_HELP, ENGINE_CONFIG_HELP, SERVER_COMMAND_HELP
from hone.commands.options import OVERWRITE, RESTART, SANDBOX


def register(app: typer.Typer) -> None:
    @app.command()
    def bench(
        model: Path = typer.Option(..., help="Model folder (Hugging Face format, safetensors)."),
        tasks: list[str] = typer.Option(..., help="Suite: Task JSONL, or NAME=PATH. Repeat for several."),
        out: Path = typer.Option(..., "-o", "--out", help="Output folder (bench.json, bench.md, failures.jsonl)."),
        reference: Path = typer.Option(None, help="Another model's Generation JSONL on the same tasks."),
        train_data: list[Path] = typer.Option(None, help="Training file to check the suites against (repeatable)."),
        n: int = typer.Option(1, "-n", help="Samples per task (pass@k when > 1)."),
        temperature: float = typer.Option(0.0, help="0 = greedy."),
        top_p: float = typer.Option(1.0),
        max_new_tokens: int = typer.Option(512),
        batch_size: int = typer.Option(16),
        choice_scoring: str = typer.Option("generate", help="Choice tasks: generate | loglik (the likeliest option "
                                           "letter, as lm-evaluation-harness scores MMLU)."),
        backend: str = typer.Option(None, help=BACKEND_HELP),
        engine_config: Path = typer.Option(None, help=ENGINE_CONFIG_HELP),
        server_command: str = typer.Option(None, help=SERVER_COMMAND_HELP),
        seed: int = typer.Option(0),
        workers: int = typer.Option(None, help="Parallel graders (default: all cores)."),
        judge: str = typer.Option(None, "--judge", help="Pairwise judge for open tasks against --reference, e.g. "
                                  "anthropic or openai:MODEL@URL (cache + ledger in the output folder)."),
        budget_usd: float = typer.Option(None, help="Stop the judge before the output folder's judge ledger passes "
                                         "this; a judge that costs money needs it (or --no-budget)."),
        no_budget: bool = typer.Option(False, "--no-budget", help="Run a judge that costs money without a cap."),
        concurrency: int = typer.Option(8, help="Judge calls in flight."),
        judge_config: Path = typer.Option(None, help="Judge config YAML: prices, rpm, tpm, timeouts, retries."),
        restart: bool = RESTART,
        overwrite: bool = OVERWRITE,
        sandbox: str = SANDBOX,
    ) -> None:
        """Generate (batched), grade, and report accuracy with 95% CIs; a killed run resumes."""
        from hone.bench.run import BenchConfig, run_bench
        from hone.generate.base import GenParams
        from hone.generate.registry import load_generate_config
        from hone.models.loading import inspect_model_dir
        from hone.progress import stage_bar

        inspect_model_dir(model)  # a wrong folder fails at once; the suites are checked before the model loads
        setup = None
        if judge:
            from hone.judge.config import load_judge_config
            from hone.judge.factory import JudgeSetup

            setup = JudgeSetup(spec=judge, settings=load_judge_config(judge_config), concurrency=concurrency,
                               budget_usd=budget_usd, sandbox=sandbox)
        params = GenParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, n=n, seed=seed,
                           batch_size=batch_size)
        engine = load_generate_config(engine_config).override(backend=backend, server_command=server_command)
        config = BenchConfig(params=params, choice_scoring=choice_scoring, workers=workers, sandbox=sandbox,
                             engine=engine, judge=setup, no_budget=no_budget, restart=restart, overwrite=overwrite)
        result = run_bench(config, model, tasks, out, reference=reference, train_data=train_data or None,
                           progress=stage_bar)
        typer.echo(result.outputs["markdown"].read_text(encoding="utf-8"))
        contamination = result.report.contamination
        flagged = contamination.flagged() if contamination else 0
        if flagged:
            typer.echo(f"warning: {flagged} benchmark tasks overlap the training data (see bench.json)", err=True)
        typer.echo(f"wrote {out / 'bench.json'}, {out / 'bench.md'}, {out / 'failures.jsonl'}")
