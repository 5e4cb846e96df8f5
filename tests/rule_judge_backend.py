"""A judge backend for tests, written as a real one would be (one module, `open_backend`): it answers the grade
prompt by comparing the <answer> block with the <reference> block, with no network. Used to show that a new
backend is one module plus one registry line, and that the cache layer wraps any backend."""

from __future__ import annotations

import asyncio
import json
import re

from hone.judge.base import Completion, JudgeRequest
from hone.judge.registry import BackendContext


def _block(text: str, tag: str) -> str:
    m = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", text, re.S)
    return m.group(1) if m else ""


class RuleBackend:
    batched = False

    def __init__(self, name: str, delay: float = 0.0):
        self.model_id = f"rule:{name}"
        self.price_key = "local"
        self.delay = delay
        self.calls = 0

    async def complete(self, request: JudgeRequest) -> Completion:
        self.calls += 1
        await asyncio.sleep(self.delay)
        prompt = request.messages[0][1]
        item = re.search(r"Item id: (\S+)", prompt)
        ok = f" is {_block(prompt, 'reference')}." in _block(prompt, "answer")
        text = json.dumps({"id": item.group(1) if item else "?", "verdict": "pass" if ok else "fail",
                           "score": float(ok), "reason": "same as the reference" if ok else "not the reference"})
        return Completion(text, len(prompt) // 4, len(text) // 4, "end_turn")

    def received(self) -> list[tuple[JudgeRequest, Completion]]:
        return []

    async def aclose(self) -> None:
        pass


def open_backend(arg: str, context: BackendContext) -> RuleBackend:
    return RuleBackend(arg or "exact")
