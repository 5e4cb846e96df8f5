"""`hone data sft|dpo|bootstrap`: training rows from verified improvements, guarded and with lineage."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from hone.commands.options import OVERWRITE, RESTART

MAX_IDS_SHOWN = 10


def _report(out: Path, result) -> None:
    rep = result.report
    if result.skipped:
        typer.echo(f"{out}: already complete for these inputs and settings (skipped)")
    unit = "pairs" if rep.kind == "dpo" else "rows"
    sources = ", ".join(f"{k}: {v}" for k, v in sorted(rep.sources.items()))
    typer.echo(f"wrote {rep.final} {unit} to {out}" + (f" ({sources})" if sources and rep.kind != "dpo" else ""))
    typer.echo(f"built {rep.built}, {rep.duplicates} duplicates removed, "
               f"{rep.contaminated} dropped for benchmark overlap")
    hits = list(rep.contaminated_rows.items())
    for row_id, hit in hits[:MAX_IDS_SHOWN]:
        typer.echo(f"  overlap: {row_id} ~ {hit['suite']}:{hit['bench_id']}")
    if len(hits) > MAX_IDS_SHOWN:
        typer.echo(f"  ... and {len(hits) - MAX_IDS_SHOWN} more (all listed in {out}.manifest.json)")
    for reason, n in sorted(rep.not_built.items()):
        typer.echo(f"not built {n}: {reason}")
    if rep.replay_wanted:
        typer.echo(f"replay: {rep.replay_added} of {rep.replay_wanted} wanted"
                   + ("" if rep.replay_added == rep.replay_wanted else " (the replay file has no more)"))


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Training data from verified improvements (SFT rows, DPO pairs, bootstrap pairs).",
                        no_args_is_help=True)

    def command(kind: str, doc: str):
        def run(
            tasks: Path = typer.Option(..., help="Task JSONL the critiques / generations / verdicts refer to."),
            out: Path = typer.Option(..., "-o", "--out", help="Output JSONL."),
            critiques: Optional[Path] = typer.Option(None, help="Critique JSONL (from `hone critique`)."),
            generations: Optional[Path] = typer.Option(None, help="Generation JSONL (sft: verified samples)."),
            verdicts: Optional[Path] = typer.Option(None, help="Verdict JSONL for --generations / bootstrap."),
            bench_suite: List[str] = typer.Option([], "--bench-suite", help="Held-out suite to decontaminate "
                                                  "against: PATH or NAME=PATH (Task JSONL); repeatable."),
            replay: Optional[Path] = typer.Option(None, help="Original training set (SFTExample JSONL)."),
            replay_share: float = typer.Option(0.0, help="Share of the final rows drawn from --replay."),
            ngram: int = typer.Option(13, help="N-gram size for benchmark overlap."),
            round: Optional[int] = typer.Option(None, help="Loop round, recorded in each row's lineage."),
            max_per_task: Optional[int] = typer.Option(None, help="sft: at most this many verified samples per task."),
            seed: int = typer.Option(0),
            restart: bool = RESTART,
            overwrite: bool = OVERWRITE,
        ) -> None:
            from hone.data.run import DataStageConfig, run_data
            from hone.progress import stage_bar

            config = DataStageConfig(kind=kind, replay_share=replay_share, ngram=ngram, round=round,
                                     max_per_task=max_per_task, seed=seed, restart=restart, overwrite=overwrite)
            with stage_bar(f"data {kind}") as bar:
                result = run_data(config, tasks, out, critiques_path=critiques, generations_path=generations,
                                  verdicts_path=verdicts, bench_paths=bench_suite, replay_path=replay, progress=bar)
            _report(out, result)

        run.__doc__ = doc
        group.command(kind)(run)

    command("sft", "SFT rows from accepted rewrites (--critiques) and/or verified samples (--generations, "
                   "--verdicts); ties and passes are never turned into fixes.")
    command("dpo", "Preference pairs: chosen = the accepted rewrite, rejected = the original failed answer.")
    command("bootstrap", "Forward (task -> reference) and reverse (reference -> task) rows from failed items.")
    command("unverified", "A control arm's rows: the model's own finished samples (--generations), never judged.")
    app.add_typer(group, name="data")
