"""An LLM judge over any backend, layered: cache first (CachingBackend), then budget, rate limits and retries
(MeteredBackend), then the backend; then schema validation.

The flow of one question: look the rendered prompt up in the cache; if it is not there, reserve its worst-case
cost against the budget, call the backend (retrying transient failures), and commit the answer and its cost
before using it. A reply that does not validate against the template's schema is re-asked with the problem
stated; if it still does not validate, the item is an `error`, never a pass.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hone.errors import HoneError
from hone.evidence import LLMGradeEvidence
from hone.judge.base import (BudgetExhausted, Completion, JudgeCallError, JudgeRequest, LLMBackend,
                             content_sha256, error_verdict)
from hone.judge.cache import Budget, CachingBackend, JudgeCache, cache_key
from hone.judge.config import JudgeConfig
from hone.judge.metered import MeteredBackend
from hone.judge.pairwise import compare_both_orders
from hone.judge.prompts import (GradeReply, InvalidReply, PairReply, grade_request, pairwise_request, parse_reply,
                                reask_request)
from hone.judge.ratelimit import RateLimiter, RetryPolicy
from hone.records import Generation, Task, Verdict


class LLMJudge:
    def __init__(self, backend: LLMBackend, cache: JudgeCache, config: JudgeConfig, *, concurrency: int = 8,
                 budget_usd: float | None = None):
        self.backend = backend
        self.name = backend.model_id
        self.cache = cache
        self.config = config
        self.price = config.price(backend.price_key)
        self.discount = config.batch_discount if backend.batched else 1.0
        if budget_usd is not None and self.price is None:
            raise HoneError(f"--budget-usd: no price for {backend.price_key!r}, so spending cannot be capped; add "
                            f"it under `prices:` in the judge config (USD per million input and output tokens)")
        self.budget = Budget(cache, budget_usd)
        self.limiter = RateLimiter(concurrency, config.rpm, config.tpm)
        self.policy = RetryPolicy(config.max_attempts, config.base_delay_s, config.max_delay_s)
        # More items in flight than call slots, so a slot never waits on an item being rendered or parsed.
        self.parallelism = config.batch_max_requests if backend.batched else 2 * concurrency
        self.stats: Counter[str] = Counter()
        metered = MeteredBackend(backend, self.budget, self.limiter, self.policy, self._usd, self.stats)
        self.client = CachingBackend(metered, cache, self._usd, self.stats)

    def _usd(self, input_tokens: int, output_tokens: int) -> float | None:
        return None if self.price is None else self.price.usd(input_tokens, output_tokens) * self.discount

    async def ask(self, request: JudgeRequest) -> tuple[Completion, str]:
        """The answer to one rendered prompt, from the cache or paid for exactly once, and its cache key."""
        return await self.client.complete(request), cache_key(self.name, request)

    async def _valid_reply(self, request: JudgeRequest, schema: type[GradeReply] | type[PairReply], item_id: str):
        """Ask, and re-ask with the problem stated while the reply does not validate."""
        keys = []
        for attempt in range(self.config.reask + 1):
            completion, key = await self.ask(request)
            keys.append(key)
            try:
                return parse_reply(completion.text, schema, item_id), {"template": request.template.split("+")[0],
                                                                       "cache_keys": keys, "asks": attempt + 1}
            except InvalidReply as e:
                problem = str(e)
                if completion.stop_reason in ("max_tokens", "length"):
                    problem += f" (the reply was cut off at max_tokens={request.max_tokens})"
                self.stats["reasks"] += 1
                request = reask_request(request, completion.text, problem, item_id)
        raise InvalidReply(f"no valid reply after {len(keys)} asks; last problem: {problem}")

    def _failure(self, generation: Generation, exc: Exception) -> Verdict:
        kind = {JudgeCallError: "api", BudgetExhausted: "budget", InvalidReply: "invalid_reply"}.get(type(exc))
        self.stats["errors"] += 1
        if kind is None:
            return error_verdict(generation, self.name, f"internal error: {type(exc).__name__}: {exc}", "internal")
        return error_verdict(generation, self.name, str(exc), kind)

    async def grade(self, task: Task, generation: Generation) -> Verdict:
        if generation.finish_reason == "error":
            return error_verdict(generation, self.name, f"the generation failed: {generation.output[:200]}",
                                 "generation")
        try:
            reply, evidence = await self._valid_reply(grade_request(task, generation.output, self.config.max_tokens),
                                                      GradeReply, task.id)
        except (JudgeCallError, BudgetExhausted, InvalidReply) as e:
            return self._failure(generation, e)
        return Verdict(id=generation.id, sample=generation.sample, judge=self.name, verdict=reply.verdict,
                       score=reply.score, reason=reply.reason,
                       evidence=LLMGradeEvidence(judged_sha256=content_sha256(generation), **evidence))

    async def _one_order(self, task: Task, first: str, second: str) -> tuple[str, str, dict[str, Any]]:
        reply, evidence = await self._valid_reply(pairwise_request(task, first, second, self.config.max_tokens),
                                                  PairReply, task.id)
        return reply.winner, reply.reason, evidence

    async def compare(self, task: Task, a: Generation, b: Generation) -> Verdict:
        for g in (a, b):
            if g.finish_reason == "error":
                return error_verdict(a, self.name, f"generation {g.model} #{g.sample} failed: {g.output[:200]}",
                                     "generation")
        try:
            return await compare_both_orders(self._one_order, task, a, b, self.name)
        except (JudgeCallError, BudgetExhausted, InvalidReply) as e:
            return self._failure(a, e)

    def summary(self) -> dict[str, Any]:
        return {"judge": self.name, **dict(self.stats), "ledger": self.cache.totals()}

    async def aclose(self) -> None:
        await self.client.aclose()
