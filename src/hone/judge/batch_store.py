"""What a batch backend must not forget across a kill: the batches it submitted, what each holds, and the results
it has read. Its own tables and its own connection (by default in the run's judge SQLite file, next to the cache).

A submitted batch is written before anything waits on it, so a restarted process polls it instead of paying for
the same requests again. Each succeeded result is written as it is read, and handed to the cache layer once
(`take_results`), so an answer the process read just before a kill is still recorded by the next run.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from hone.judge.base import Completion, JudgeRequest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY, model TEXT NOT NULL, state TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batch_requests (
    batch_id TEXT NOT NULL, custom_id TEXT NOT NULL, request TEXT NOT NULL, PRIMARY KEY (batch_id, custom_id));
CREATE TABLE IF NOT EXISTS batch_results (
    batch_id TEXT NOT NULL, custom_id TEXT NOT NULL, text TEXT NOT NULL, input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL, stop_reason TEXT NOT NULL, taken INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (batch_id, custom_id));
"""


def _dump(request: JudgeRequest) -> str:
    return json.dumps({"template": request.template, "system": request.system,
                       "messages": request.messages, "max_tokens": request.max_tokens})


def _load(text: str) -> JudgeRequest:
    d = json.loads(text)
    return JudgeRequest(d["template"], d["system"], tuple(tuple(m) for m in d["messages"]), d["max_tokens"])


class BatchStore:
    def __init__(self, path: str | os.PathLike):
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Autocommit, WAL: the cache's connection may use the same file at the same time.
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def open_batches(self, model: str) -> list[str]:
        return [b for (b,) in self.conn.execute(
            "SELECT batch_id FROM batches WHERE model = ? AND state = 'open'", (model,)).fetchall()]

    def in_open_batch(self, custom_id: str) -> bool:
        return self.conn.execute(
            "SELECT 1 FROM batch_requests r JOIN batches b USING (batch_id) WHERE r.custom_id = ? AND b.state = 'open'",
            (custom_id,)).fetchone() is not None

    def add_batch(self, batch_id: str, model: str, requests: dict[str, JudgeRequest]) -> None:
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("INSERT INTO batches VALUES (?, ?, 'open', ?)", (batch_id, model, time.time()))
            self.conn.executemany("INSERT INTO batch_requests VALUES (?, ?, ?)",
                                  [(batch_id, key, _dump(req)) for key, req in requests.items()])

    def requests(self, batch_id: str) -> dict[str, JudgeRequest]:
        return {key: _load(text) for key, text in self.conn.execute(
            "SELECT custom_id, request FROM batch_requests WHERE batch_id = ?", (batch_id,)).fetchall()}

    def add_result(self, batch_id: str, custom_id: str, completion: Completion) -> None:
        self.conn.execute("INSERT OR IGNORE INTO batch_results VALUES (?, ?, ?, ?, ?, ?, 0)",
                          (batch_id, custom_id, completion.text, completion.input_tokens, completion.output_tokens,
                           completion.stop_reason))

    def finish(self, batch_id: str) -> None:
        self.conn.execute("UPDATE batches SET state = 'done' WHERE batch_id = ?", (batch_id,))

    def take_results(self, model: str) -> list[tuple[JudgeRequest, Completion]]:
        """Results of `model`'s batches not handed over yet, each returned once (across processes too)."""
        if self.conn.execute("SELECT 1 FROM batch_results WHERE taken = 0 LIMIT 1").fetchone() is None:
            return []  # the usual case, without taking the write lock
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            rows = self.conn.execute(
                "SELECT x.batch_id, x.custom_id, r.request, x.text, x.input_tokens, x.output_tokens, x.stop_reason "
                "FROM batch_results x JOIN batches b USING (batch_id) "
                "JOIN batch_requests r ON r.batch_id = x.batch_id AND r.custom_id = x.custom_id "
                "WHERE b.model = ? AND x.taken = 0", (model,)).fetchall()
            self.conn.executemany("UPDATE batch_results SET taken = 1 WHERE batch_id = ? AND custom_id = ?",
                                  [(row[0], row[1]) for row in rows])
        return [(_load(req), Completion(text, tin, tout, stop)) for _, _, req, text, tin, tout, stop in rows]
