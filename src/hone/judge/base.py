"""The judge protocol, the LLM backend protocol, and the errors every backend maps its failures to.

A judge turns (task, generation) into a Verdict and never fails open: whatever goes wrong (an API error that
outlived its retries, a reply that does not validate, an exhausted budget) ends as a verdict of `error` with
the reason, never as a pass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

from hone.evidence import ErrorEvidence
from hone.hashing import text_sha256
from hone.records import Generation, Task, Verdict
from hone.redaction import strip_secrets


class Judge(Protocol):
    name: str
    parallelism: int  # how many items `judge_all` should keep in flight

    async def grade(self, task: Task, generation: Generation) -> Verdict:
        """pass / fail / error for one answer, judged against the task and its reference."""
        ...

    async def compare(self, task: Task, a: Generation, b: Generation) -> Verdict:
        """win / tie / loss from A's point of view (or error)."""
        ...

    async def aclose(self) -> None:
        ...


@dataclass(frozen=True)
class JudgeRequest:
    """One conversation sent to a judge model; `template` is the versioned prompt it was rendered from."""

    template: str
    system: str
    messages: tuple[tuple[str, str], ...]
    max_tokens: int

    def chat(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]

    def canonical(self) -> str:
        """The rendered prompt as one string: what the cache key hashes."""
        return json.dumps({"system": self.system, "messages": self.messages, "max_tokens": self.max_tokens},
                          ensure_ascii=False, sort_keys=True)

    def chars(self) -> int:
        return len(self.system) + sum(len(c) for _, c in self.messages)


@dataclass
class Completion:
    text: str
    input_tokens: int
    output_tokens: int
    stop_reason: str = ""


class LLMBackend(Protocol):
    """One judge model behind one API (one module each, named in hone.judge.registry). A backend only talks to
    its API: the cache and ledger, the budget, rate limits and retries are layers around any backend
    (hone.judge.cache.CachingBackend, hone.judge.metered.MeteredBackend)."""

    model_id: str  # e.g. "anthropic:claude-haiku-5-5"; goes into the cache key
    price_key: str  # which row of the price table applies
    batched: bool  # True: the backend queues and retries calls itself (a batch API); no limiter or retry layer

    async def complete(self, request: JudgeRequest) -> Completion:
        """One answer. Raises JudgeCallError (`retryable` for 429, 5xx, timeouts) for a failed call; never
        returns a partial answer."""
        ...

    def received(self) -> list[tuple[JudgeRequest, Completion]]:
        """Batched backends: every answer read from the API since the last call, each exactly once, whether or
        not a `complete` call still waits for it (a batch submitted by a killed process ends later); the cache
        layer records these, and only these, so a paid answer is neither lost nor recorded twice. Realtime
        backends return [] (the cache layer records what `complete` returns)."""
        ...

    async def aclose(self) -> None:
        """Close this event loop's clients; the backend stays usable from a later loop."""
        ...


class JudgeCallError(Exception):
    """A call that failed. `retryable` ones (429, 5xx, 529, timeouts) are retried with backoff."""

    def __init__(self, reason: str, retryable: bool, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


class BudgetExhausted(Exception):
    """The next call could push spending past `--budget-usd`; it is not made."""


def content_sha256(generation: Generation) -> str:
    """Hash of exactly what was judged, so a verdict can be matched to the answer it is about."""
    return text_sha256(generation.output)


# Error kinds a later run may fix (the API recovers, the budget is raised, a bug is fixed); the `judge` stage
# keeps them out of its resumable partial output so a re-run tries those items again.
RETRYABLE_KINDS = frozenset({"api", "budget", "internal"})


def error_verdict(generation: Generation, judge: str, reason: str, kind: str) -> Verdict:
    """The fail-closed outcome: an explicit `error` carrying its reason (never a default pass)."""
    return Verdict(id=generation.id, sample=generation.sample, judge=judge, verdict="error", reason=strip_secrets(reason)[:500],
                   evidence=ErrorEvidence(judged_sha256=content_sha256(generation), error_kind=kind,
                                          retryable=kind in RETRYABLE_KINDS))


def is_retryable(verdict: Verdict) -> bool:
    return verdict.verdict == "error" and bool(verdict.evidence.get("retryable"))
