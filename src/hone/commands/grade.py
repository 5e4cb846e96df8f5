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
        from hone.errors import HoneError
        from hone.grade.run import GradeConfig, run_grade
        from hone.grade.sandbox import Limits
        from hone.progress import stage_bar

        if timeout <= 0 or memory_mb < 64:
            raise HoneError("--timeout must be > 0 and --memory-mb at least 64")
        config = GradeConfig(workers=workers, limits=Limits(timeout_s=timeout, memory_mb=memory_mb),
                             sandbox=sandbox, restart=restart, overwrite=overwrite)
        with stage_bar("grade") as bar:
            result = run_grade(config, tasks, generations, out, progress=bar)
        if result.skipped:
            typer.echo(f"{out}: already complete for these inputs and graders (skipped)")
            return
        c = result.counts
        typer.echo(f"wrote {len(result.verdicts)} verdicts to {out}: {c['pass']} pass, {c['fail']} fail "
                   f"({c['timeouts']} timed out), {c['error']} error")
        if result.isolation is not None:
            typer.echo(f"sandbox: {sandbox}: {result.isolation.describe()}")
            for note in result.isolation.notes:
                typer.echo(f"warning: {note}", err=True)
