"""Judge many items concurrently; every item comes back as a verdict, in the order given.

Each item's verdict is checked against the item it was asked about; a judge that raises, answers about
another item, or answers a comparison with anything but win / tie / loss / error, yields an `error` for that item
(never a pass, never a lost item).
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Sequence

from hone.judge.base import Judge, error_verdict
from hone.records import Generation, Task, Verdict

Job = tuple[Generation, Callable[[], Awaitable[Verdict]]]
Progress = Callable[[int], None]


async def run_jobs(judge: Judge, jobs: Sequence[Job], on_result: Callable[[Verdict], None] | None = None,
                   progress: Progress | None = None) -> list[Verdict]:
    results: list[Verdict | None] = [None] * len(jobs)
    order = iter(range(len(jobs)))

    async def worker() -> None:
        for i in order:
            generation, job = jobs[i]
            try:
                verdict = await job()
            except Exception as e:  # noqa: BLE001 - fail closed
                verdict = error_verdict(generation, judge.name, f"internal error: {type(e).__name__}: {e}", "internal")
            if (verdict.id, verdict.sample) != (generation.id, generation.sample):
                verdict = error_verdict(generation, judge.name, f"the judge answered about {verdict.id!r} "
                                        f"#{verdict.sample} instead", "internal")
            results[i] = verdict
            if on_result:
                on_result(verdict)
            if progress:
                progress(1)

    await asyncio.gather(*(worker() for _ in range(max(1, min(judge.parallelism, len(jobs))))))
    return results  # type: ignore[return-value]


def grade_jobs(judge: Judge, items: Sequence[tuple[Task, Generation]]) -> list[Job]:
    return [(g, lambda t=t, g=g: judge.grade(t, g)) for t, g in items]


async def _compared(judge: Judge, task: Task, a: Generation, b: Generation) -> Verdict:
    verdict = await judge.compare(task, a, b)
    if verdict.verdict not in ("win", "tie", "loss", "error"):
        raise ValueError(f"the pairwise judge returned {verdict.verdict!r}")  # an error verdict, never a pass
    return verdict


def compare_jobs(judge: Judge, items: Sequence[tuple[Task, Generation, Generation]]) -> list[Job]:
    return [(a, lambda t=t, a=a, b=b: _compared(judge, t, a, b)) for t, a, b in items]


def _run(judge: Judge, jobs: list[Job], progress: Progress | None,
         on_result: Callable[[Verdict], None] | None = None) -> list[Verdict]:
    async def main() -> list[Verdict]:
        try:
            return await run_jobs(judge, jobs, on_result=on_result, progress=progress)
        finally:
            await judge.aclose()  # per-loop clients; the judge stays usable by a later call

    return asyncio.run(main())


def judge_all(judge: Judge, items: list[tuple[Task, Generation]], progress: Progress | None = None) -> list[Verdict]:
    """Grade every (task, generation); one verdict per item, in order."""
    return _run(judge, grade_jobs(judge, items), progress)


def compare_all(judge: Judge, items: list[tuple[Task, Generation, Generation]], progress: Progress | None = None,
                on_result: Callable[[Verdict], None] | None = None) -> list[Verdict]:
    """Compare every (task, A, B) (an LLM judge asks in both orders); win / tie / loss from A's side, in order.
    `on_result` sees each verdict as it finishes (a resumable stage appends it to its partial output)."""
    return _run(judge, compare_jobs(judge, items), progress, on_result)
