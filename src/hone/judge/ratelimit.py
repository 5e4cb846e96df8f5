"""Concurrency, requests-per-minute and tokens-per-minute limits, and retries with backoff.

Retries use exponential backoff with jitter and wait at least what the server asked for (`retry-after`,
`retry-after-ms`) on 429 / 5xx / 529 / timeouts; a server's request to wait also pauses every other call of
the same limiter, since they would hit the same limit. Sleeping between attempts does not hold a slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Generic, TypeVar

from hone.judge.base import JudgeCallError
from hone.redaction import strip_secrets

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


class LoopLocal(Generic[T]):
    """One object per running event loop: asyncio primitives and async HTTP clients belong to the loop that
    first used them, and a judge may be driven by several `asyncio.run` calls in turn."""

    def __init__(self, factory: Callable[[], T]):
        self._factory = factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._value: T | None = None

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._value, self._loop = self._factory(), loop
        return self._value  # type: ignore[return-value]

    def pop(self) -> T | None:
        """This loop's object, forgotten (the next `get` makes a new one); None if this loop has none."""
        if self._loop is not asyncio.get_running_loop():
            return None
        value, self._value, self._loop = self._value, None, None
        return value


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
        return max(backoff, retry_after or 0.0)


class _Bucket:
    """Token bucket refilled continuously at `per_minute / 60` per second, starting full."""

    def __init__(self, per_minute: int):
        self.capacity = float(per_minute)
        self.level = float(per_minute)
        self.rate = per_minute / 60.0
        self.stamp = time.monotonic()

    def wait_for(self, amount: float) -> float:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        amount = min(amount, self.capacity)
        return 0.0 if self.level >= amount else (amount - self.level) / self.rate

    def take(self, amount: float) -> None:
        self.level -= min(amount, self.capacity)


class RateLimiter:
    def __init__(self, concurrency: int, rpm: int | None = None, tpm: int | None = None):
        self.concurrency = concurrency
        self._rpm = _Bucket(rpm) if rpm else None
        self._tpm = _Bucket(tpm) if tpm else None
        self._paused_until = 0.0
        self._state = LoopLocal(lambda: (asyncio.Semaphore(concurrency), asyncio.Lock()))

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def _admit(self, tokens: int) -> None:
        _, lock = self._state.get()
        async with lock:  # first come, first served
            while True:
                wait = max(self._paused_until - time.monotonic(),
                           self._rpm.wait_for(1) if self._rpm else 0.0,
                           self._tpm.wait_for(tokens) if self._tpm else 0.0)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if self._rpm:
                self._rpm.take(1)
            if self._tpm:
                self._tpm.take(tokens)

    @contextlib.asynccontextmanager
    async def slot(self, tokens: int) -> AsyncIterator[None]:
        sem, _ = self._state.get()
        async with sem:
            await self._admit(tokens)
            yield


async def call_with_retries(call: Callable[[], Awaitable[T]], limiter: RateLimiter, policy: RetryPolicy,
                            tokens: int, on_retry: Callable[[JudgeCallError], None] | None = None) -> T:
    """Run `call` inside a limiter slot; retry retryable failures; raise the last one, saying how many tries."""
    for attempt in range(1, policy.max_attempts + 1):
        async with limiter.slot(tokens):
            try:
                return await call()
            except JudgeCallError as e:
                if not e.retryable:
                    raise
                if attempt == policy.max_attempts:
                    raise JudgeCallError(f"gave up after {attempt} attempts: {e.reason}", retryable=True) from None
                wait = policy.delay(attempt, e.retry_after)
                if e.retry_after:
                    limiter.pause(e.retry_after)
                if on_retry:
                    on_retry(e)
        await asyncio.sleep(wait)
    raise AssertionError("unreachable")


def retry_after_seconds(headers: Any) -> float | None:
    """`retry-after-ms`, then `retry-after` as seconds or as an HTTP date."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / scale)
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                return max(0.0, email.utils.mktime_tz(parsed) - time.time())
    return None


def sdk_call_error(exc: Exception, *, status_error: type, timeout_error: type, connection_error: type) -> JudgeCallError:
    """Map an official SDK's exception (anthropic and openai share the shape) to a JudgeCallError."""
    if isinstance(exc, timeout_error):
        return JudgeCallError("timed out", retryable=True)
    if isinstance(exc, connection_error):
        return JudgeCallError(f"connection failed ({strip_secrets(str(exc))[:200]})", retryable=True)
    if isinstance(exc, status_error):
        status = exc.status_code  # type: ignore[attr-defined]
        body = getattr(exc, "body", None)
        detail = ""
        if isinstance(body, dict):
            err = body.get("error") if isinstance(body.get("error"), dict) else body
            detail = " ".join(str(err.get(k, "")) for k in ("type", "message") if err.get(k))
        reason = strip_secrets(f"HTTP {status}" + (f" {detail}" if detail else ""))[:300]
        headers = getattr(getattr(exc, "response", None), "headers", None)
        return JudgeCallError(reason, retryable=status in RETRYABLE_STATUS, retry_after=retry_after_seconds(headers))
    return JudgeCallError(strip_secrets(f"{type(exc).__name__}: {exc}")[:300], retryable=False)
