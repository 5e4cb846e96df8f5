"""The `generate` stage: every (task, sample) answered once, resumable after a kill."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from hone.errors import HoneError
from hone.generate.base import GenParams, Generator, Request
from hone.records import Generation, PartialJsonl, Task, read_tasks
from hone.runs import Stage, manifest_for


def requests_for(tasks: list[Task], n: int) -> list[Request]:
    return [Request(id=t.id, sample=s, messages=t.chat()) for t in tasks for s in range(n)]


def run_generate(
    make_generator: Callable[[], Generator],
    tasks_path: str | os.PathLike,
    out_path: str | os.PathLike,
    params: GenParams,
    model_ref: dict[str, str | os.PathLike | None],
    progress_factory: Callable[[int, int], Callable[[int], None]] | None = None,
    *,
    restart: bool = False,
    overwrite: bool = False,
) -> tuple[list[Generation], bool]:
    """Generate for every task not already in `<out>.partial`; return (records, skipped_whole_stage).

    `model_ref` names what the generations depend on (a model folder, or a server + model name); it goes
    into the manifest so a changed model is never mistaken for a finished stage.
    """
    out = Path(out_path)
    tasks = read_tasks(tasks_path)
    inputs = {"tasks": tasks_path, **{k: v for k, v in model_ref.items() if v and os.path.exists(str(v))}}
    config = {"params": params.model_dump(exclude={"batch_size"}),
              **{k: str(v) for k, v in model_ref.items() if v and not os.path.exists(str(v))}}
    stage = Stage(manifest_for(out), "generate", inputs, config)
    if stage.is_done() and out.exists():
        from hone.records import read_records

        return read_records(out, Generation), True
    stage.start([out], restart=restart, overwrite=overwrite)
    sink = PartialJsonl(out, Generation, key=lambda g: (g.id, g.sample))
    try:
        todo = [r for r in requests_for(tasks, params.n) if (r.id, r.sample) not in sink.done]
        progress = progress_factory(len(todo), len(sink.done)) if progress_factory else None
        retry_later: list[Generation] = []
        if todo:
            generator = make_generator()
            for g in generator.generate(todo, params, progress):
                retry_later.append(g) if g.retryable else sink.append(g)
        order = {t.id: i for i, t in enumerate(tasks)}
        records = sink.finish(order=lambda g: (order.get(g.id, len(order)), g.sample), unfinished=retry_later)
    finally:
        sink.close()
    if retry_later:
        raise HoneError(f"{out}: {len(retry_later)} of {len(records)} items ended in errors a re-run may fix (first: "
                        f"{retry_later[0].output[:160]}); the stage is not complete: run the same command again "
                        "to redo only those")
    stage.finish({"generations": out}, {"tasks": len(tasks), "generations": len(records),
                                        "errors": sum(g.finish_reason == "error" for g in records)})
    return records, False
