"""`hone docx`: Word documents to GitHub-flavoured Markdown."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("docx")
    def docx_command(
        inputs: list[Path] = typer.Argument(..., metavar="IN...",
                                            help=".docx files, or folders searched recursively."),
        out_dir: Path = typer.Option(None, "-o", "--out-dir", help="Folder for the .md files (default: beside "
                                     "each .docx); a folder's sub-folders are kept."),
        assets: Path = typer.Option(None, "--assets", help="Folder for extracted pictures, one sub-folder per "
                                    "document (default: assets/ beside the .md)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace .md files that already exist."),
    ) -> None:
        """One .md per .docx: headings, lists, tables in place, links, pictures, footnotes. A file that cannot
        be converted gets one line saying why; the others are still converted; the exit status is 1 if any
        failed."""
        from hone.docx.batch import plan, run
        from hone.progress import bar

        jobs = list(plan(inputs, out_dir, assets))
        failed = 0
        with bar("docx", len(jobs)) as advance:
            for job in jobs:
                outcome = run(job, overwrite)
                if outcome.error:
                    failed += 1
                    typer.echo(f"{outcome.source}: {outcome.error}", err=True)
                else:
                    plural = "s" if outcome.images > 1 else ""
                    pictures = f" ({outcome.images} picture{plural})" if outcome.images else ""
                    typer.echo(f"{outcome.source} -> {outcome.markdown}{pictures}")
                    for warning in outcome.warnings:
                        typer.echo(f"{outcome.source}: warning: {warning}", err=True)
                advance(1)
        summary = f"converted {len(jobs) - failed} of {len(jobs)} documents"
        if failed:
            typer.echo(f"{summary}; {failed} failed", err=True)
            raise typer.Exit(1)
        typer.echo(summary)
