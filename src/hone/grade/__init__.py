"""Ground truth first: verifiers for math (math-verify) and code (unit tests in a sandbox).

`verify` decides one answer; `verify_many` / `iter_verdicts` decide many in parallel (code in sandboxed
processes driven from threads, math in worker processes when there is enough of it). Open-ended tasks have no
verifier: their verdict is None, and the LLM judge decides them.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from hone.records import Generation, Task, Verdict

if TYPE_CHECKING:
    from hone.grade.sandbox import Limits

# Worker processes for math pay off only for many answers on several free cores: each worker imports sympy
# (seconds), and on 2 busy cores benchmarks/grading.py measured the pool slower than one process at 4000 answers.
MATH_PROCESS_THRESHOLD = 2000
MATH_PROCESS_MIN_WORKERS = 4
MATH_CHUNK = 50

_shared_pool: ProcessPoolExecutor | None = None
_shared_lock = threading.Lock()

Item = tuple[Task, Generation]


def grader_versions() -> dict[str, str]:
    from hone.grade.choice import CHOICE_JUDGE
    from hone.grade.code import CODE_JUDGE
    from hone.grade.math import MATH_JUDGE

    return {"math": MATH_JUDGE, "code": CODE_JUDGE, "choice": CHOICE_JUDGE}


def _spawn_pool(workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: the parent may hold threads (torch, HTTP clients) that fork would copy mid-lock.
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def _math_pool() -> ProcessPoolExecutor:
    """A process pool shared by every thread that grades math outside the main thread."""
    global _shared_pool
    with _shared_lock:
        if _shared_pool is None:
            _shared_pool = _spawn_pool(max(1, min(4, os.cpu_count() or 1)))
        return _shared_pool


def _error(generation: Generation, judge: str, exc: BaseException) -> Verdict:
    return Verdict(id=generation.id, sample=generation.sample, judge=judge, verdict="error",
                   reason=f"the grader failed: {type(exc).__name__}: {str(exc)[:300]}")


def verify(task: Task, generation: Generation, limits: Limits | None = None,
           sandbox: str = "strict") -> Verdict | None:
    """The verifier's verdict for a math or code task; None for an open task (no verifier can decide it).

    Safe from any thread: math graded outside the main thread runs in a worker process, where math-verify's
    signal-based timeouts work. `limits` are the code sandbox's (default: hone.grade.code.DEFAULT_LIMITS);
    `sandbox` its level (hone.grade.sandbox.require: "strict" refuses code where isolation is not full).
    """
    if generation.id != task.id:
        raise ValueError(f"generation {generation.id!r} is not an answer to task {task.id!r}")
    if task.kind == "open":
        return None
    if task.kind == "choice":
        from hone.grade.choice import grade_choice

        return grade_choice(task, generation)
    if task.kind == "code":
        from hone.grade.code import CODE_JUDGE, grade_code

        try:
            return grade_code(task, generation, limits, sandbox)
        except OSError as e:
            return _error(generation, CODE_JUDGE, e)
    from hone.grade.math import grade_math

    if threading.current_thread() is threading.main_thread():
        return grade_math(task, generation)
    return _math_pool().submit(grade_math, task, generation).result()


def iter_verdicts(items: Sequence[Item], workers: int | None = None, progress: Callable[[int], None] | None = None,
                  limits: Limits | None = None, sandbox: str = "strict") -> Iterator[tuple[int, Verdict | None]]:
    """Yield (index, verdict) for every item, in the order they finish; with code items and `sandbox` "strict",
    a HoneError before the first one when this machine cannot fully isolate the code."""
    from hone.grade.math import grade_math, grade_math_batch

    workers = max(1, workers or os.cpu_count() or 1)
    code = [i for i, (t, _) in enumerate(items) if t.kind == "code"]
    if code:
        from hone.grade.sandbox import require

        require(sandbox)
    math = [i for i, (t, _) in enumerate(items) if t.kind == "math"]
    for i, (t, g) in enumerate(items):
        if t.id != g.id:
            raise ValueError(f"item {i}: generation {g.id!r} is not an answer to task {t.id!r}")
        if t.kind in ("open", "choice"):  # no verifier, or one that is instant
            if progress:
                progress(1)
            yield i, verify(t, g) if t.kind == "choice" else None
    main_thread = threading.current_thread() is threading.main_thread()
    own_pool: ProcessPoolExecutor | None = None
    futures: dict[Future, list[int]] = {}
    threads = ThreadPoolExecutor(max_workers=workers)
    try:
        for i in code:
            futures[threads.submit(verify, *items[i], limits, sandbox)] = [i]
        if math and (not main_thread or (workers >= MATH_PROCESS_MIN_WORKERS and len(math) >= MATH_PROCESS_THRESHOLD)):
            pool: Executor = _math_pool() if not main_thread else (own_pool := _spawn_pool(min(workers, len(math))))
            for start in range(0, len(math), MATH_CHUNK):
                chunk = math[start:start + MATH_CHUNK]
                futures[pool.submit(grade_math_batch, [items[i] for i in chunk])] = chunk
            math = []
        for i in math:  # in this (main) thread, while the code runs in its sandboxes
            yield i, grade_math(*items[i])
            if progress:
                progress(1)
        for f in as_completed(futures):
            chunk = futures[f]
            result = f.result()
            verdicts = result if isinstance(result, list) else [result]
            for i, v in zip(chunk, verdicts):
                yield i, v
            if progress:
                progress(len(chunk))
    finally:  # on an interrupt, do not start the queued work (each sandbox already running finishes)
        for f in futures:
            f.cancel()
        threads.shutdown(wait=True, cancel_futures=True)
        if own_pool is not None:
            own_pool.shutdown(cancel_futures=True)


def verify_many(items: list[Item], workers: int | None = None, progress: Callable[[int], None] | None = None,
                limits: Limits | None = None, sandbox: str = "strict") -> list[Verdict | None]:
    """Verdicts for many (task, generation) pairs, in input order; None for open tasks."""
    out: list[Verdict | None] = [None] * len(items)
    for i, v in iter_verdicts(items, workers, progress, limits, sandbox):
        out[i] = v
    return out
