"""`hone demo`: the offline showcase on a tiny model built on the spot."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        out: Path = typer.Option(Path("demo-run"), "-o", "--out", help="Run directory."),
        seed: int = typer.Option(0),
    ) -> None:
        """Build a tiny model locally and run the stages that exist so far on CPU, saying what ran."""
        import random

        from hone.generate.base import GenParams
        from hone.generate.hf import HFGenerator
        from hone.generate.run import run_generate
        from hone.models.tiny import build_tiny_model
        from hone.progress import stage_bar
        from hone.records import Task, write_records

        model_dir = out / "base"
        if not (model_dir / "config.json").exists():
            build_tiny_model(model_dir, seed=seed)
        rng = random.Random(seed)
        tasks = []
        for i in range(32):
            a, b = rng.randint(10, 99), rng.randint(10, 99)
            tasks.append(Task(id=f"add-{i}", kind="math", prompt=f"What is {a} + {b}?", reference=str(a + b)))
        write_records(out / "tasks.jsonl", tasks)
        factory = stage_bar("generate")
        try:
            records, _ = run_generate(lambda: HFGenerator.from_dir(str(model_dir), device="cpu"),
                                      out / "tasks.jsonl", out / "generations.jsonl",
                                      GenParams(max_new_tokens=16, batch_size=32), {"model": model_dir},
                                      progress_factory=factory)
        finally:
            factory.close()
        typer.echo(f"built a tiny untrained Llama at {model_dir}, wrote {len(tasks)} arithmetic tasks and "
                   f"{len(records)} greedy generations under {out}.")
        typer.echo("Not run yet: grading, training, merge, critique and the improvement loop (their issues are "
                   "open); the demo grows as they land.")
