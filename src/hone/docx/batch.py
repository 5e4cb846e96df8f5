"""Many inputs (files and folders) to Markdown: where each output goes, and one outcome per document.

A bad file never stops the others; the caller prints one line per failure and a summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from hone.docx.convert import convert_file
from hone.errors import HoneError


@dataclass(frozen=True)
class Job:
    source: Path
    markdown: Path
    assets: Path  # this document's own picture folder


@dataclass(frozen=True)
class Outcome:
    source: Path
    markdown: Path | None = None
    images: int = 0
    error: str | None = None
    warnings: tuple[str, ...] = ()  # converted, but something was left out (e.g. a picture the file lacks)


def plan(inputs: list[Path], out_dir: Path | None = None, assets_dir: Path | None = None
         ) -> Iterator[Job | Outcome]:
    """A Job per .docx, or a failed Outcome for an input that cannot be one.

    `a.docx` -> `OUT_DIR/a.md` (beside the .docx without OUT_DIR); a folder is searched recursively and its
    sub-folders are kept under OUT_DIR. Pictures go to `ASSETS/<sub-folder>/<name>/`, ASSETS defaulting to
    `assets` beside the Markdown.
    """
    claimed: dict[Path, Path] = {}
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() == ".docx" and p.is_file()
                           and not p.name.startswith("~$"))  # ~$name.docx: Word's lock file of an open document
            if not found:
                yield Outcome(item, error="no .docx file in this folder")
            pairs = [(p, p.parent.relative_to(item)) for p in found]
        elif item.exists():
            pairs = [(item, Path("."))]
        else:
            yield Outcome(item, error="no such file or folder")
            continue
        for source, sub in pairs:
            markdown = (out_dir / sub if out_dir else source.parent) / f"{source.stem}.md"
            assets = (assets_dir / sub if assets_dir else markdown.parent / "assets") / source.stem
            clash = claimed.get(markdown.resolve()) or claimed.get(assets.resolve())
            if clash is not None and clash.resolve() == source.resolve():
                continue  # the same file named twice (itself and through its folder): converted once
            if clash is not None:
                yield Outcome(source, error=f"{markdown} or {assets} is also the output of {clash} in this run")
                continue
            claimed[markdown.resolve()] = claimed[assets.resolve()] = source
            yield Job(source, markdown, assets)


def run(job: Job | Outcome, overwrite: bool = False) -> Outcome:
    """Convert one planned document; a failure becomes an Outcome carrying its one-line reason."""
    if isinstance(job, Outcome):
        return job
    try:
        converted = convert_file(job.source, job.markdown, job.assets, overwrite=overwrite)
    except HoneError as e:
        return Outcome(job.source, error=str(e))
    return Outcome(job.source, job.markdown, images=len(converted.images), warnings=tuple(converted.warnings))


def convert_paths(inputs: list[Path], out_dir: Path | None = None, assets_dir: Path | None = None,
                  overwrite: bool = False) -> list[Outcome]:
    """Convert every .docx named by `inputs`; one Outcome per document (or bad input), in order."""
    return [run(job, overwrite) for job in plan(inputs, out_dir, assets_dir)]
