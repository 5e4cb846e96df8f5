"""`hone merge` and `hone verify-merge`: streaming LoRA merge into the exact base, with proof."""

from __future__ import annotations

from pathlib import Path

import typer

from hone.commands.options import OVERWRITE, RESTART


def register(app: typer.Typer) -> None:
    @app.command()
    def merge(
        base: Path = typer.Option(..., help="The full-precision base the adapter was trained on."),
        adapter: Path = typer.Option(..., help="LoRA adapter folder (adapter_config.json + safetensors)."),
        out: Path = typer.Option(..., "-o", "--out", help="New folder for the merged model."),
        force: bool = typer.Option(False, "--force", help="Merge despite a lineage mismatch (loud; verified)."),
        dequantized_base: bool = typer.Option(False, "--dequantized-base",
                                              help="Merge into the quantize/dequantize round trip the adapter saw."),
        verify: bool = typer.Option(True, "--verify/--no-verify", help="Verify the merge (default: on)."),
        probes: Path = typer.Option(None, help="Extra probe prompts (JSONL: prompt or messages)."),
        restart: bool = RESTART,
        overwrite: bool = OVERWRITE,
    ) -> None:
        """Merge ADAPTER into BASE shard by shard; refuse the wrong base; verify before the result appears."""
        from hone.merge.run import MergeConfig, run_merge
        from hone.merge.verify import read_probes

        config = MergeConfig(force=force, dequantized_base=dequantized_base, verify=verify, restart=restart,
                             overwrite=overwrite, probes=read_probes(probes) if probes else None)
        from hone.progress import stage_bar

        with stage_bar("merge + verify") as bar:
            result = run_merge(config, base, adapter, out, progress=bar)
        report, m = result.report, result.report.merge
        done = "already merged from this base, adapter and settings (skipped):" if result.skipped else "merged"
        typer.echo(f"{done} {m.lora_modules} LoRA modules into {m.into} in {m.seconds:.1f}s -> {out}")
        if report.verification:
            typer.echo(f"verified clean: {report.verification.summary()}")
        else:
            typer.echo("NOT verified (--no-verify): run `hone verify-merge` before using it", err=True)

    @app.command("verify-merge")
    def verify_merge_cmd(
        base: Path = typer.Option(..., help="The base the adapter was trained on."),
        adapter: Path = typer.Option(..., help="The LoRA adapter folder."),
        merged: Path = typer.Option(..., help="The merged model folder to check."),
        probes: Path = typer.Option(None, help="Extra probe prompts (JSONL: prompt or messages)."),
        report: Path = typer.Option(None, help="Where to write this check's report (default: "
                                               "MERGED.verify-merge.json beside the folder; the merge's own "
                                               "merge_report.json is never touched)."),
    ) -> None:
        """Compare MERGED with the adapter on the base as trained; exit non-zero, saying why, if not clean."""
        from hone.merge.verify import check_and_report, read_probes

        out = report or merged.with_name(merged.name + ".verify-merge.json")
        result = check_and_report(base, adapter, merged, out, probes=read_probes(probes) if probes else None)
        typer.echo(f"clean: {result.summary()} (report: {out})")
        for w in result.warnings:
            typer.echo(f"warning: {w}", err=True)
