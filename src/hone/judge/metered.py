"""`MeteredBackend`: the budget, rate limits and retries as a layer around any backend.

Each call first reserves its worst-case cost against the budget (so the cap is never crossed, even with many
calls in flight), then runs inside a limiter slot, retrying transient failures with backoff, and finally
settles the reservation at the actual cost. Batched backends queue and retry calls themselves: they get the
budget only, and what they were paid for reaches the budget through `received()`.
"""

from __future__ import annotations

from collections import Counter

from hone.judge.base import Completion, JudgeRequest, LLMBackend
from hone.judge.cache import Budget, Cost
from hone.judge.ratelimit import RateLimiter, RetryPolicy, call_with_retries


def worst_input_tokens(request: JudgeRequest) -> int:
    """An upper bound on prompt tokens: byte-level BPE never makes more tokens than UTF-8 bytes."""
    size = len(request.system.encode("utf-8")) + sum(len(c.encode("utf-8")) for _, c in request.messages)
    return size + 16 * (len(request.messages) + 1)


class MeteredBackend:
    def __init__(self, inner: LLMBackend, budget: Budget, limiter: RateLimiter, policy: RetryPolicy, cost: Cost,
                 stats: Counter[str]):
        self.inner = inner
        self.budget = budget
        self.limiter = limiter
        self.policy = policy
        self.cost = cost
        self.stats = stats
        self.model_id = inner.model_id
        self.price_key = inner.price_key
        self.batched = inner.batched

    async def complete(self, request: JudgeRequest) -> Completion:
        """Raises BudgetExhausted (nothing is called) or the backend's last JudgeCallError."""
        worst = self.cost(worst_input_tokens(request), request.max_tokens) or 0.0
        self.budget.reserve(worst)
        actual = None
        try:
            if self.batched:  # its cost reaches the budget through received()
                completion = await self.inner.complete(request)
            else:
                completion = await call_with_retries(
                    lambda: self.inner.complete(request), self.limiter, self.policy,
                    tokens=request.chars() // 3 + request.max_tokens,
                    on_retry=lambda e: self.stats.update(["retries"]))
                actual = self.cost(completion.input_tokens, completion.output_tokens)
        finally:
            self.budget.settle(worst, actual)
        self.stats["calls"] += 1
        self.stats["input_tokens"] += completion.input_tokens
        self.stats["output_tokens"] += completion.output_tokens
        return completion

    def received(self) -> list[tuple[JudgeRequest, Completion]]:
        answers = self.inner.received()
        for _, completion in answers:
            self.budget.spent += self.cost(completion.input_tokens, completion.output_tokens) or 0.0
        return answers

    async def aclose(self) -> None:
        await self.inner.aclose()
