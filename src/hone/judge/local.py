"""A local Hugging Face model as the judge, through `hone.generate.hf` (so prompts go through `hone.chat`).

Calls that arrive together are generated as one batch. The cache key names the model by a hash of its
weights, so a retrained model never reuses the old model's answers. Local calls cost nothing in USD.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path

from hone.errors import HoneError
from hone.judge.base import Completion, JudgeCallError, JudgeRequest
from hone.judge.ratelimit import LoopLocal
from hone.judge.registry import BackendContext


def open_backend(arg: str, context: BackendContext) -> "LocalBackend":
    """`local:DIR`: a Hugging Face model folder with a chat template."""
    if not arg:
        raise HoneError("--judge local:DIR needs a model folder")
    return LocalBackend(arg, temperature=context.config.temperature)


@dataclass
class _Queue:
    pending: list[tuple[JudgeRequest, asyncio.Future]] = field(default_factory=list)
    worker: asyncio.Task | None = None


class LocalBackend:
    batched = False

    def __init__(self, model_dir: str, batch_size: int = 16, temperature: float | None = None,
                 trust_remote_code: bool = False, device: str | None = None):
        from hone.models.loading import inspect_model_dir, load_tokenizer, weights_sha256

        inspect_model_dir(model_dir)
        load_tokenizer(model_dir, trust_remote_code=trust_remote_code)  # no chat template: fail now
        self.model_dir = model_dir
        self.model_id = f"local:{Path(model_dir).name}@{weights_sha256(model_dir)[:16]}"
        self.price_key = "local"
        self.batch_size = batch_size
        self.temperature = temperature or 0.0
        self.trust_remote_code = trust_remote_code
        self.device = device
        self._generator = None
        self._lock = threading.Lock()
        self._queue = LoopLocal(_Queue)

    def _load(self):
        from hone.generate.hf import HFGenerator

        if self._generator is None:
            self._generator = HFGenerator.from_dir(self.model_dir, device=self.device,
                                                   trust_remote_code=self.trust_remote_code)
        return self._generator

    def _generate(self, requests: list[JudgeRequest]) -> list[Completion]:
        from hone.chat import encode, render_prompt
        from hone.generate.base import GenParams, Request

        with self._lock:
            gen = self._load()
            chats = [([{"role": "system", "content": r.system}] if r.system else []) + r.chat() for r in requests]
            params = GenParams(max_new_tokens=max(r.max_tokens for r in requests), temperature=self.temperature,
                               batch_size=len(requests))
            out = {g.id: g for g in gen.generate([Request(str(i), 0, c) for i, c in enumerate(chats)], params)}
            return [Completion(out[str(i)].output, len(encode(gen.tokenizer, render_prompt(gen.tokenizer, c))),
                               out[str(i)].tokens, out[str(i)].finish_reason) for i, c in enumerate(chats)]

    async def _work(self, q: _Queue) -> None:
        while q.pending:
            await asyncio.sleep(0)  # let callers that arrive together join this batch
            chunk, q.pending[:] = q.pending[: self.batch_size], q.pending[self.batch_size:]
            try:
                results = await asyncio.to_thread(self._generate, [r for r, _ in chunk])
            except Exception as e:  # noqa: BLE001 - every caller gets the failure as an error
                for _, future in chunk:
                    future.set_exception(JudgeCallError(f"local judge model: {type(e).__name__}: {e}", False))
                continue
            for (_, future), completion in zip(chunk, results):
                future.set_result(completion)

    async def complete(self, request: JudgeRequest) -> Completion:
        q = self._queue.get()
        future = asyncio.get_running_loop().create_future()
        q.pending.append((request, future))
        if q.worker is None or q.worker.done():
            q.worker = asyncio.create_task(self._work(q))
        return await future

    def received(self) -> list[tuple[JudgeRequest, Completion]]:
        return []

    async def aclose(self) -> None:
        pass
