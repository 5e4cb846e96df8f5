"""The judge cache and cost ledger (one SQLite file in the run directory), and `CachingBackend`, the layer that
puts them around any backend (as lm-eval's CachingLM wraps any model).

Every answer a judge model gives is stored under a key hashed from (judge model, template version, rendered
prompt) and committed before the verdict is used, so a re-run, or a run resumed after a kill, never pays twice
for a question already answered. Every paid call adds a ledger row (tokens, USD); the budget reads the ledger,
so a cap holds across kills and re-runs of the same run directory. No API key is ever part of a key or a row.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from hone.judge.base import BudgetExhausted, Completion, JudgeRequest, LLMBackend
from hone.judge.ratelimit import LoopLocal

Cost = Callable[[int, int], "float | None"]  # (input tokens, output tokens) -> USD, None when the price is unknown

CACHE_FILE = "judge_cache.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, template TEXT NOT NULL, prompt TEXT NOT NULL,
    text TEXT NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
    stop_reason TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS ledger (
    n INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, key TEXT NOT NULL, model TEXT NOT NULL,
    mode TEXT NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, usd REAL);
"""


def cache_key(model_id: str, request: JudgeRequest) -> str:
    h = hashlib.sha256()
    for part in (model_id, request.template, request.canonical()):
        h.update(part.encode("utf-8") + b"\0")
    return h.hexdigest()


class JudgeCache:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit: each statement is durable on its own; several processes may share the file.
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def get(self, key: str) -> Completion | None:
        row = self.conn.execute(
            "SELECT text, input_tokens, output_tokens, stop_reason FROM answers WHERE key = ?", (key,)
        ).fetchone()
        return Completion(row[0], row[1], row[2], row[3]) if row else None

    def record(self, key: str, model_id: str, request: JudgeRequest, completion: Completion, usd: float | None,
               mode: str) -> None:
        """Store a paid answer and its ledger row in one transaction."""
        now = time.time()
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, model_id, request.template, request.canonical(), completion.text, completion.input_tokens,
                 completion.output_tokens, completion.stop_reason, now),
            )
            self.conn.execute(
                "INSERT INTO ledger (ts, key, model, mode, input_tokens, output_tokens, usd) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (now, key, model_id, mode, completion.input_tokens, completion.output_tokens, usd),
            )

    def spent_usd(self) -> float:
        return float(self.conn.execute("SELECT COALESCE(SUM(usd), 0) FROM ledger").fetchone()[0])

    def totals(self) -> dict[str, float | int]:
        calls, tin, tout, usd, unknown = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), "
            "COALESCE(SUM(usd), 0), COALESCE(SUM(usd IS NULL), 0) FROM ledger"
        ).fetchone()
        return {"calls": calls, "input_tokens": tin, "output_tokens": tout, "usd": round(usd, 6),
                "calls_of_unknown_cost": unknown}


class Budget:
    """A USD cap over the ledger. A call is made only if what is spent, plus the worst case of every call in
    flight, plus its own worst case, stays within the cap; so the cap is never crossed, even with many calls
    in flight."""

    def __init__(self, cache: JudgeCache, limit_usd: float | None):
        self.limit = limit_usd
        self.spent = cache.spent_usd()
        self.reserved = 0.0

    def reserve(self, worst_usd: float) -> None:
        if self.limit is None:
            return
        if self.spent + self.reserved + worst_usd > self.limit:
            raise BudgetExhausted(
                f"budget: ${self.spent:.4f} spent and ${self.reserved:.4f} in flight of the ${self.limit:.4f} cap; "
                f"the next call could cost ${worst_usd:.4f}"
            )
        self.reserved += worst_usd

    def settle(self, worst_usd: float, actual_usd: float | None) -> None:
        if self.limit is not None:
            self.reserved -= worst_usd
        self.spent += actual_usd or 0.0


class CachingBackend:
    """Any backend, answered from the cache first; what it is paid for is committed (answer + ledger row) before
    it is used. The same prompt asked twice at once is paid once: the second call waits, then finds the answer
    cached. `cost` prices a call for the ledger; `stats` counts `cached` answers."""

    def __init__(self, inner: LLMBackend, cache: JudgeCache, cost: Cost, stats: Counter[str]):
        self.inner = inner
        self.cache = cache
        self.cost = cost
        self.stats = stats
        self.model_id = inner.model_id
        self.price_key = inner.price_key
        self.batched = inner.batched
        self._mode = "batch" if inner.batched else "realtime"
        self._locks = LoopLocal(dict)

    async def complete(self, request: JudgeRequest) -> Completion:
        key = cache_key(self.model_id, request)
        locks: dict[str, list] = self._locks.get()
        entry = locks.setdefault(key, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                return await self._complete_once(request, key)
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del locks[key]

    async def _complete_once(self, request: JudgeRequest, key: str) -> Completion:
        self._record_received()  # a batch result read meanwhile may be the answer
        hit = self.cache.get(key)
        if hit is not None:
            self.stats["cached"] += 1
            return hit
        completion = await self.inner.complete(request)
        if self.batched:
            self._record_received()  # this answer among them, recorded exactly once
        else:
            self._record(key, request, completion)
        return completion

    def _record(self, key: str, request: JudgeRequest, completion: Completion) -> None:
        usd = self.cost(completion.input_tokens, completion.output_tokens)
        self.cache.record(key, self.model_id, request, completion, usd, self._mode)

    def _record_received(self) -> None:
        for request, completion in self.inner.received():
            self._record(cache_key(self.model_id, request), request, completion)

    def received(self) -> list[tuple[JudgeRequest, Completion]]:
        return []  # recorded here already

    async def aclose(self) -> None:
        await self.inner.aclose()
        self._record_received()


def judge_spend(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Paid judge calls and USD from the ledger, read-only (the running loop may be writing to it)."""
    path = Path(run_dir) / CACHE_FILE
    if not path.exists():
        return {"calls": 0, "usd": 0.0}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        calls, usd, unknown = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(usd), 0), COALESCE(SUM(usd IS NULL), 0) FROM ledger").fetchone()
        answers = conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    except sqlite3.Error:
        return {"calls": None, "usd": None, "note": f"{path}: could not be read"}
    finally:
        conn.close()
    return {"calls": calls, "usd": round(usd, 6), "calls_of_unknown_cost": unknown, "cached_answers": answers}


def spend_text(run_dir: str | os.PathLike, budget_usd: float | None) -> str:
    """Judge spend so far, for a progress bar: `judge $0.1234 of $5.00, 321 paid calls`."""
    s = judge_spend(Path(run_dir))
    if s.get("usd") is None:
        return "judge spend unknown"
    cap = f" of ${budget_usd:.2f}" if budget_usd is not None else ""
    return f"judge ${s['usd']:.4f}{cap}, {s['calls']} paid calls"
