"""The `data` stage: read critiques / verified samples, build rows, pass them through the guards, write them.

The report (what was built, not built and why, deduplicated, dropped for benchmark overlap with the ids, replayed)
goes into the stage manifest next to the output, so every training set says how it was made.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Literal, Sequence

from pydantic import BaseModel, ConfigDict

from hone.bench.suites import parse_spec
from hone.data import build
from hone.data.mix import Row, mix
from hone.errors import HoneError
from hone.overlap import NGRAM, OverlapIndex
from hone.records import (Critique, Generation, PreferencePair, SFTExample, Task, Verdict, read_records,
                          read_tasks, write_records)
from hone.runs import Stage, manifest_for
from hone.stage_contract import ProgressFactory, StageConfig, StageResult

Kind = Literal["sft", "dpo", "bootstrap", "unverified"]


class DataStageConfig(StageConfig):
    """Which rows to build, and the guards: the replay share, the n-gram of the overlap check, the loop round
    (recorded in each row's lineage), verified samples kept per task, the seed of the shuffle and the replay."""

    kind: Kind
    replay_share: float = 0.0
    ngram: int = NGRAM
    round: int | None = None
    max_per_task: int | None = None
    seed: int = 0


class DataReport(BaseModel):
    """What was built, what was not (by reason), deduplicated, dropped for benchmark overlap (with the ids),
    replayed, and where the final rows come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    not_built: dict[str, int]
    built: int
    duplicates: int
    duplicate_ids: list[str]
    contaminated: int
    contaminated_rows: dict[str, dict[str, str]]
    replay_wanted: int
    replay_added: int
    final: int
    sources: dict[str, int]


class DataResult(StageResult):
    rows: list[Row]
    report: DataReport


def _result(out: Path, rows: list[Row], report: DataReport, skipped: bool) -> DataResult:
    counts = {"rows": report.final, "built": report.built, "duplicates": report.duplicates,
              "contaminated": report.contaminated, "replay_added": report.replay_added}
    return DataResult(outputs={"rows": out}, counts=counts, skipped=skipped, rows=rows, report=report)


def load_suites(specs: Sequence[str | os.PathLike]) -> dict[str, list[Task]]:
    """Benchmark suites by name, from `PATH` or `NAME=PATH` specs (as `hone bench` takes them)."""
    from hone.bench.suites import load_suite

    suites: dict[str, list[Task]] = {}
    for spec in specs:
        suite = load_suite(str(spec))
        if suite.name in suites:
            raise HoneError(f"{spec}: a second suite named {suite.name!r} (name them NAME=PATH)")
        suites[suite.name] = suite.tasks
    return suites


def _build(kind: Kind, tasks: dict, critiques_path, generations_path, verdicts_path, round, max_per_task,
           seed) -> tuple[list[Row], Counter]:
    if kind == "sft":
        if critiques_path is None and generations_path is None:
            raise HoneError("data sft: give --critiques (accepted rewrites) and/or --generations with --verdicts "
                            "(verified samples)")
        rows, skipped = [], Counter()
        if critiques_path is not None:
            r, s = build.build_sft(tasks, read_records(critiques_path, Critique, allow_empty=True))
            rows, skipped = rows + r, skipped + s
        if generations_path is not None:
            if verdicts_path is None:
                raise HoneError("data sft: --generations needs --verdicts (only judged samples can be kept)")
            r, s = build.build_sft_from_samples(tasks, read_records(generations_path, Generation),
                                               read_records(verdicts_path, Verdict), round=round,
                                               max_per_task=max_per_task, seed=seed)
            rows, skipped = rows + r, skipped + s
        return rows, skipped
    if kind == "dpo":
        if critiques_path is None:
            raise HoneError("data dpo: give --critiques (pairs come from accepted rewrites)")
        return build.build_dpo(tasks, read_records(critiques_path, Critique, allow_empty=True))
    if kind == "unverified":
        if generations_path is None:
            raise HoneError("data unverified: give --generations (the control arm keeps them unjudged)")
        return build.build_unverified(tasks, read_records(generations_path, Generation), round=round,
                                     max_per_task=max_per_task)
    if verdicts_path is None:  # bootstrap
        raise HoneError("data bootstrap: give --verdicts (pairs come from the failed items' references)")
    return build.build_bootstrap(tasks, read_records(verdicts_path, Verdict), round=round)


def run_data(config: DataStageConfig, tasks_path: str | os.PathLike, out_path: str | os.PathLike, *,
             critiques_path: str | os.PathLike | None = None, generations_path: str | os.PathLike | None = None,
             verdicts_path: str | os.PathLike | None = None, bench_paths: Sequence[str | os.PathLike] = (),
             replay_path: str | os.PathLike | None = None, progress: ProgressFactory | None = None) -> DataResult:
    """Build `config.kind` rows, guard them (dedup, decontamination against `bench_paths`, replay share), write
    them; the report goes into the manifest. `progress` counts the built rows through the guards."""
    if config.replay_share and replay_path is None:
        raise HoneError("a replay share needs a replay file (--replay, SFTExample JSONL)")
    out = Path(out_path)
    kind = config.kind
    model = PreferencePair if kind == "dpo" else SFTExample
    inputs = {"tasks": tasks_path, "critiques": critiques_path, "generations": generations_path,
              "verdicts": verdicts_path, "replay": replay_path,
              **{f"bench{i}": parse_spec(str(p))[1] for i, p in enumerate(bench_paths)}}
    stage = Stage(manifest_for(out), f"data-{kind}", inputs, config.fingerprint())
    if stage.is_done() and out.exists():
        return _result(out, read_records(out, model, allow_empty=True),
                       DataReport.model_validate(stage.manifest()["counts"]), skipped=True)
    tasks = {t.id: t for t in read_tasks(tasks_path)}
    suites = load_suites(bench_paths)
    replay = read_records(replay_path, SFTExample) if replay_path is not None else []
    stage.start([out], restart=config.restart, overwrite=config.overwrite)
    rows, not_built = _build(kind, tasks, critiques_path, generations_path, verdicts_path, config.round,
                             config.max_per_task, config.seed)
    advance = progress(len(rows), 0) if progress else None
    index = OverlapIndex(suites, config.ngram) if suites else None
    final, mixed = mix(rows, index=index, replay=replay, replay_share=config.replay_share, seed=config.seed)
    write_records(out, final)
    if advance:
        advance(len(rows))
    report = DataReport(kind=kind, not_built=dict(not_built), **mixed.to_dict(),
                        sources=dict(Counter(getattr(r, "source", "dpo") for r in final)))
    stage.finish({"rows": out}, report.model_dump())
    return _result(out, final, report, skipped=False)
