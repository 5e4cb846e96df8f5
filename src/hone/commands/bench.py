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
        restart: bool = RESTART,
        overwrite: bool = OVERWRITE,
        sandbox: str = SANDBOX,
    ) -> None:
        """Generate (batched), grade, and report accuracy with 95% CIs; a killed run resumes."""
        from hone.bench.run import BenchConfig, run_bench
        from hone.generate.base import GenParams
        from hone.models.loading import inspect_model_dir
        from hone.progress import stage_bar

        inspect_model_dir(model)  # a wrong folder fails at once; the suites are checked before the model loads
        pairwise_judge = None
        if judge:
            from hone.errors import HoneError
            from hone.judge import make_judge
            from hone.judge.factory import default_cache_path

            if reference is None:
                raise HoneError("--judge compares open answers with a reference model's: it needs --reference")
            pairwise_judge = make_judge(judge, cache_path=default_cache_path(out), sandbox=sandbox)
        params = GenParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, n=n, seed=seed,
                           batch_size=batch_size)
        config = BenchConfig(params=params, choice_scoring=choice_scoring, workers=workers, sandbox=sandbox,
                             restart=restart, overwrite=overwrite)
        from hone.generate.registry import Engine, GenerateConfig, load_generate_config, model_ref

        engine = load_generate_config(engine_config).override(backend=backend, server_command=server_command)
        if engine.backend == "openai":
            from hone.errors import HoneError

            raise HoneError("hone bench serves --model itself (--backend server); for a server somebody else runs, "
                            "use hone generate --backend openai, then hone grade")
        with Engine(engine, model, out / "server.log") as make:
            # The default engine is loaded inside run_bench, and only if some suite still needs generating.
            result = run_bench(config, model, tasks, out, reference=reference, train_data=train_data or None,
                               judge=pairwise_judge, progress=stage_bar,
                               generator=None if engine == GenerateConfig() else make(),
                               engine_ref=model_ref(engine, model))
        typer.echo(result.outputs["markdown"].read_text(encoding="utf-8"))
        contamination = result.report.contamination
        flagged = contamination.flagged() if contamination else 0
        if flagged:
            typer.echo(f"warning: {flagged} benchmark tasks overlap the training data (see bench.json)", err=True)
        typer.echo(f"wrote {out / 'bench.json'}, {out / 'bench.md'}, {out / 'failures.jsonl'}")
