"""`hone grade`: verifier verdicts (math-verify, sandboxed unit tests) for a generations file."""

from __future__ import annotations

from pathlib import Path

import typer

from hone.commands.options import OVERWRITE, RESTART, SANDBOX


def register(app: typer.Typer) -> None:
    @app.command()
    def grade(
        tasks: Path = typer.Option(..., help="Task JSONL the generations answer."),
        generations: Path = typer.Option(..., help="Generation JSONL to grade."),
        out: Path = typer.Option(..., "-o", "--out", help="Verdict JSONL to write."),
        workers: int = typer.Option(None, help="Parallel graders (default: all cores)."),
        timeout: float = typer.Option(10.0, help="Wall-clock seconds per code answer (all its tests)."),
        memory_mb: int = typer.Option(2048, help="Address-space limit per code answer, MiB."),
        restart: bool = RESTART,
        overwrite: bool = OVERWRITE,
        sandbox: str = SANDBOX,
    ) -> None:
        """Write one Verdict (pass / fail / error, with evidence) per math or code generation; resumable."""
        from collections import Counter

        from hone.errors import HoneError
        from hone.grade.run import run_grade
        from hone.grade.sandbox import Limits
        from hone.progress import stage_bar

        if timeout <= 0 or memory_mb < 64:
            raise HoneError("--timeout must be > 0 and --memory-mb at least 64")
        with stage_bar("grade") as factory:
            records, skipped = run_grade(tasks, generations, out, workers=workers, progress_factory=factory,
                                         limits=Limits(timeout_s=timeout, memory_mb=memory_mb),
                                         restart=restart, overwrite=overwrite, sandbox=sandbox)
        if skipped:
            typer.echo(f"{out}: already complete for these inputs and graders (skipped)")
            return
        counts = Counter(v.verdict for v in records)
        timeouts = sum(v.evidence.get("outcome") == "timeout" for v in records)
        typer.echo(f"wrote {len(records)} verdicts to {out}: {counts.get('pass', 0)} pass, "
                   f"{counts.get('fail', 0)} fail ({timeouts} timed out), {counts.get('error', 0)} error")
        if any(v.judge.startswith("verifier:code") for v in records):
            from hone.grade.sandbox import isolation

            iso = isolation()
            typer.echo(f"sandbox: {sandbox}: {iso.describe()}")
            for note in iso.notes:
                typer.echo(f"warning: {note}", err=True)
