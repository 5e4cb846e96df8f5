"""The `generate` stage: every (task, sample) answered once, resumable after a kill."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from pydantic import Field, field_validator

from hone.errors import HoneError
from hone.generate.base import GenParams, Generator, Request
from hone.records import Generation, PartialJsonl, Task, read_records, read_tasks
from hone.runs import Stage, manifest_for
from hone.stage_contract import ProgressFactory, StageConfig, StageResult


def requests_for(tasks: list[Task], n: int) -> list[Request]:
    return [Request(id=t.id, sample=s, messages=t.chat()) for t in tasks for s in range(n)]


_MODEL_KEYS = ("model", "served_model")  # the model_ref values that may be a model folder on disk


class GenerateStageConfig(StageConfig):
    """The generate stage's settings: how to sample, and which model the generations depend on.

    (The engine's own settings are `hone.generate.registry.GenerateConfig`; the engine is passed in as the
    generator factory.) `model_ref` (`hone.generate.registry.model_ref`) names the model and the engine: a model
    folder is hashed as an input, the rest (a server's model name, its URL, the engine, its dtype) is part of the
    fingerprint, with every sampling parameter, batch size included (hf's batches are padded)."""

    params: GenParams = GenParams()
    model_ref: dict[str, str | None] = Field(default_factory=dict)

    @field_validator("model_ref", mode="before")
    @classmethod
    def _as_text(cls, value: dict) -> dict:
        return {k: None if v is None else str(v) for k, v in value.items()}

    def model_inputs(self) -> dict[str, str]:
        return {k: v for k, v in self.model_ref.items() if k in _MODEL_KEYS and v and os.path.exists(v)}

    def fingerprint(self) -> dict:
        inputs = self.model_inputs()
        return {"params": self.params.model_dump(),
                **{k: v for k, v in self.model_ref.items() if v and k not in inputs}}


class GenerateResult(StageResult):
    generations: list[Generation]


def _counts(tasks: list[Task], records: list[Generation]) -> dict[str, int]:
    return {"tasks": len(tasks), "generations": len(records),
            "length": sum(g.finish_reason == "length" for g in records),
            "errors": sum(g.finish_reason == "error" for g in records)}


def run_generate(config: GenerateStageConfig, make_generator: Callable[[], Generator],
                 tasks_path: str | os.PathLike, out_path: str | os.PathLike, *,
                 progress: ProgressFactory | None = None) -> GenerateResult:
    """Generate for every task not already in `<out>.partial`; a changed model or setting is never mistaken for
    a finished stage. `make_generator` is called only when there is something to generate."""
    out = Path(out_path)
    tasks = read_tasks(tasks_path)
    stage = Stage(manifest_for(out), "generate", {"tasks": tasks_path, **config.model_inputs()},
                  config.fingerprint())
    if stage.is_done() and out.exists():
        records = read_records(out, Generation)
        return GenerateResult(outputs={"generations": out}, counts=_counts(tasks, records), skipped=True,
                              generations=records)
    stage.start([out], restart=config.restart, overwrite=config.overwrite)
    params = config.params
    sink = PartialJsonl(out, Generation, key=lambda g: (g.id, g.sample))
    try:
        todo = [r for r in requests_for(tasks, params.n) if (r.id, r.sample) not in sink.done]
        advance = progress(len(todo), len(sink.done)) if progress else None
        retry_later: list[Generation] = []
        if todo:
            generator = make_generator()
            for g in generator.generate(todo, params, advance):
                retry_later.append(g) if g.retryable else sink.append(g)
        order = {t.id: i for i, t in enumerate(tasks)}
        records = sink.finish(order=lambda g: (order.get(g.id, len(order)), g.sample), unfinished=retry_later)
    finally:
        sink.close()
    if retry_later:
        raise HoneError(f"{out}: {len(retry_later)} of {len(records)} items ended in errors a re-run may fix (first: "
                        f"{retry_later[0].output[:160]}); the stage is not complete: run the same command again "
                        "to redo only those")
    counts = _counts(tasks, records)
    stage.finish({"generations": out}, counts)
    return GenerateResult(outputs={"generations": out}, counts=counts, generations=records)
