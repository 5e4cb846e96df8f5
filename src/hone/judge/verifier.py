"""The verifiers of `hone.grade` (math-verify, sandboxed unit tests) behind the judge protocol.

`hone.grade.verify(task, generation)` returns a Verdict, or None when no verifier can decide (open answers).
Here None becomes an explicit `error`: a verifier-only judge never guesses.
"""

from __future__ import annotations

import asyncio
import os

from hone.evidence import PairwiseEvidence
from hone.judge.base import content_sha256, error_verdict
from hone.records import Generation, Task, Verdict


class VerifierJudge:
    name = "verifier"

    def __init__(self, parallelism: int | None = None, sandbox: str = "strict"):
        self.parallelism = parallelism or max(1, os.cpu_count() or 1)
        self.sandbox = sandbox  # the code sandbox's level (hone.grade.sandbox.require)

    async def decide(self, task: Task, generation: Generation) -> Verdict | None:
        """The verifier's verdict, None when it cannot decide; a crash of the verifier is an `error`."""
        from hone.grade import verify

        try:
            if task.kind == "code":  # unit tests run in a sandboxed process: wait for it off the event loop
                verdict = await asyncio.to_thread(verify, task, generation, None, self.sandbox)
            else:  # math-verify is quick, and its timeouts need the main thread (elsewhere verify uses a process)
                verdict = verify(task, generation)
        except Exception as e:  # noqa: BLE001 - a verifier failure is an error verdict, never a pass
            return error_verdict(generation, self.name, f"verifier failed: {type(e).__name__}: {e}", "internal")
        if verdict is None:
            return None
        if (verdict.id, verdict.sample) != (generation.id, generation.sample):
            return error_verdict(generation, self.name, f"verifier returned a verdict for {verdict.id!r} "
                                 f"#{verdict.sample}", "internal")
        if verdict.evidence.judged_sha256 is None:
            verdict.evidence.judged_sha256 = content_sha256(generation)
        return verdict

    async def grade(self, task: Task, generation: Generation) -> Verdict:
        verdict = await self.decide(task, generation)
        if verdict is None:
            return error_verdict(generation, self.name, f"no verifier can decide a {task.kind!r} task; use an LLM "
                                 "or composite judge", "no_verifier")
        return verdict

    async def compare(self, task: Task, a: Generation, b: Generation) -> Verdict:
        va, vb = await asyncio.gather(self.grade(task, a), self.grade(task, b))
        return verdicts_to_pair(self.name, a, b, va, vb)

    async def aclose(self) -> None:
        pass


def verdicts_to_pair(judge: str, a: Generation, b: Generation, va: Verdict, vb: Verdict) -> Verdict:
    """Two ground-truth verdicts as a pairwise outcome: pass beats fail; same outcome is a tie."""
    for v in (va, vb):
        if v.verdict not in ("pass", "fail"):
            return error_verdict(a, judge, f"cannot compare: {v.id} #{v.sample} is {v.verdict} ({v.reason})",
                                 v.evidence.get("error_kind", "internal"))
    outcome = "tie" if va.verdict == vb.verdict else ("win" if va.verdict == "pass" else "loss")
    return Verdict(id=a.id, sample=a.sample, judge=judge, verdict=outcome,
                   score={"win": 1.0, "tie": 0.5, "loss": 0.0}[outcome],
                   reason=f"A {va.verdict}, B {vb.verdict} by the verifier",
                   evidence=PairwiseEvidence(judged_sha256=content_sha256(a), b_sha256=content_sha256(b),
                                             b_model=b.model, b_sample=b.sample, consistent=True,
                                             decided_by=va.judge))
