"""Claude through the Message Batches API: half the price, answers within hours instead of seconds.

Calls are queued and sent as one batch once the queue has been quiet for `batch_flush_s` (or is full). Each
request's `custom_id` is its cache key, and results are matched by `custom_id`, never by position; a result
for an id the batch does not hold is ignored, and a request the results leave out (or that errored, expired
or was canceled) goes into a later batch, up to `max_attempts`, then ends as an error.

Every submitted batch and its requests are written to the backend's own store (hone.judge.batch_store) before
anything waits on them, so a process killed while a batch is processing resumes polling that batch on restart
instead of paying for the same requests again. Every succeeded result is written to the store as soon as it is
read and handed to the cache layer through `received()`, including results no current caller is waiting for.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from hone.judge.anthropic import anthropic_call_error, client_factory, message_params, message_text, require_key
from hone.judge.base import Completion, JudgeCallError, JudgeRequest
from hone.judge.batch_store import BatchStore
from hone.judge.cache import cache_key
from hone.judge.config import DEFAULT_ANTHROPIC_MODEL, JudgeConfig
from hone.judge.ratelimit import LoopLocal, RetryPolicy
from hone.judge.registry import BackendContext

_RETRYABLE_ERRORS = {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}


def open_backend(arg: str, context: BackendContext) -> "AnthropicBatchBackend":
    """`anthropic[:MODEL]` with `--batch`; the store shares the run's judge SQLite file."""
    require_key(f"anthropic:{arg}" if arg else "anthropic")
    return AnthropicBatchBackend(arg or DEFAULT_ANTHROPIC_MODEL, BatchStore(context.store_path), context.config,
                                 temperature=context.config.temperature)


@dataclass
class _LoopState:
    pending: dict[str, JudgeRequest] = field(default_factory=dict)
    waiters: dict[str, list[asyncio.Future]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    last_enqueue: float = 0.0
    flusher: asyncio.Task | None = None
    pollers: dict[str, asyncio.Task] = field(default_factory=dict)
    resumed: bool = False


class AnthropicBatchBackend:
    batched = True

    def __init__(self, model: str, store: BatchStore, config: JudgeConfig, temperature: float | None = None):
        self.model = model
        self.model_id = f"anthropic:{model}"  # same answers as the Messages API: the cache is shared
        self.price_key = self.model_id
        self.store = store
        self.config = config
        self.temperature = temperature
        self.policy = RetryPolicy(config.max_attempts, config.base_delay_s, config.max_delay_s)
        self.unknown_results = 0
        self._client = LoopLocal(client_factory(config.timeout_s))
        self._state = LoopLocal(_LoopState)

    # ----- the caller's side ---------------------------------------------------------------------------------
    async def complete(self, request: JudgeRequest) -> Completion:
        st = self._state.get()
        if not st.resumed:
            st.resumed = True
            for batch_id in self.store.open_batches(self.model):
                st.pollers[batch_id] = asyncio.create_task(self._poll(batch_id))
        key = cache_key(self.model_id, request)  # the custom_id: results are matched by it, never by position
        future = asyncio.get_running_loop().create_future()
        st.waiters.setdefault(key, []).append(future)
        if not self.store.in_open_batch(key):
            self._enqueue(st, key, request)
        return await future

    def received(self) -> list[tuple[JudgeRequest, Completion]]:
        return self.store.take_results(self.model)

    def _enqueue(self, st: _LoopState, key: str, request: JudgeRequest) -> None:
        st.pending[key] = request
        st.last_enqueue = time.monotonic()
        if st.flusher is None or st.flusher.done():
            st.flusher = asyncio.create_task(self._flush(st))

    def _resolve(self, st: _LoopState, key: str, result: Completion | Exception) -> None:
        for future in st.waiters.pop(key, []):
            if not future.done():
                future.set_exception(result) if isinstance(result, Exception) else future.set_result(result)

    def _retry_or_fail(self, st: _LoopState, key: str, request: JudgeRequest, reason: str, retryable: bool) -> None:
        if key not in st.waiters:
            return
        st.attempts[key] = st.attempts.get(key, 1) + 1
        if retryable and st.attempts[key] <= self.policy.max_attempts:
            self._enqueue(st, key, request)
        else:
            self._resolve(st, key, JudgeCallError(f"batch: {reason}", retryable=False))

    # ----- submitting ----------------------------------------------------------------------------------------
    async def _flush(self, st: _LoopState) -> None:
        try:
            await self._submit_pending(st)
        except Exception as e:  # noqa: BLE001 - no caller may wait forever
            for key in list(st.pending):
                del st.pending[key]
                self._resolve(st, key, JudgeCallError(f"batch submission: {type(e).__name__}: {e}", False))

    async def _submit_pending(self, st: _LoopState) -> None:
        failures = 0
        while st.pending:
            quiet = self.config.batch_flush_s - (time.monotonic() - st.last_enqueue)
            if quiet > 0 and len(st.pending) < self.config.batch_max_requests:
                await asyncio.sleep(min(quiet, 0.05))
                continue
            chunk = dict(list(st.pending.items())[: self.config.batch_max_requests])
            for key in chunk:
                del st.pending[key]
            requests = [{"custom_id": key, "params": message_params(self.model, req, self.temperature)}
                        for key, req in chunk.items()]
            try:
                batch = await self._client.get().messages.batches.create(requests=requests)
            except Exception as e:  # noqa: BLE001 - every failure is mapped and either retried or reported
                err = anthropic_call_error(e)
                failures += 1
                if err.retryable and failures < self.policy.max_attempts:
                    st.pending.update(chunk)
                    await asyncio.sleep(self.policy.delay(failures, err.retry_after))
                else:
                    for key in chunk:
                        self._resolve(st, key, JudgeCallError(f"batch submission failed: {err.reason}", False))
                continue
            self.store.add_batch(batch.id, self.model, chunk)
            st.pollers[batch.id] = asyncio.create_task(self._poll(batch.id))

    # ----- collecting ----------------------------------------------------------------------------------------
    async def _call(self, make):
        """An SDK call for polling or fetching, retried on transient failures."""
        for attempt in range(1, self.policy.max_attempts + 1):
            try:
                return await make()
            except Exception as e:  # noqa: BLE001
                err = anthropic_call_error(e)
                if not err.retryable or attempt == self.policy.max_attempts:
                    raise err from None
                await asyncio.sleep(self.policy.delay(attempt, err.retry_after))

    async def _poll(self, batch_id: str) -> None:
        st = self._state.get()
        try:
            await self._collect(st, batch_id)
        except Exception as e:  # noqa: BLE001 - no caller may wait forever; the batch stays open for a re-run
            for key in self.store.requests(batch_id):
                reason = e.reason if isinstance(e, JudgeCallError) else f"{type(e).__name__}: {e}"
                self._resolve(st, key, JudgeCallError(f"batch {batch_id}: {reason}", retryable=False))

    async def _collect(self, st: _LoopState, batch_id: str) -> None:
        held = self.store.requests(batch_id)
        client = self._client.get()
        while (await self._call(lambda: client.messages.batches.retrieve(batch_id))).processing_status != "ended":
            await asyncio.sleep(self.config.poll_interval_s)
        seen = set()
        async for line in await self._call(lambda: client.messages.batches.results(batch_id)):
            key = line.custom_id
            if key not in held or key in seen:
                self.unknown_results += 1  # a result for an id this batch does not hold: never guess
                continue
            seen.add(key)
            result = line.result
            if result.type == "succeeded":
                msg = result.message
                completion = Completion(message_text(msg), msg.usage.input_tokens, msg.usage.output_tokens,
                                        msg.stop_reason or "")
                self.store.add_result(batch_id, key, completion)  # before any caller sees it
                self._resolve(st, key, completion)
            elif result.type == "errored":
                kind = result.error.error.type
                self._retry_or_fail(st, key, held[key], f"errored ({kind})", kind in _RETRYABLE_ERRORS)
            else:
                self._retry_or_fail(st, key, held[key], result.type, True)
        for key in held.keys() - seen:
            self._retry_or_fail(st, key, held[key], "the batch returned no result for this request", True)
        self.store.finish(batch_id)

    async def aclose(self) -> None:
        """Stop polling; batches still open stay in the run's SQLite file and are resumed by the next call."""
        st = self._state.pop()
        for task in [st.flusher, *st.pollers.values()] if st else []:
            if task and not task.done():
                task.cancel()
        client = self._client.pop()
        if client is not None:
            await client.close()
