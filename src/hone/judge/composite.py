"""Verifiers first, the LLM only where no verifier can decide (or, when asked, as a second opinion).

Every verdict carries the composite's name as `judge` (so before/after comparisons see one judge) and says in
`evidence.decided_by` what actually decided it.
"""

from __future__ import annotations

from hone.evidence import SecondOpinion
from hone.judge.base import error_verdict
from hone.judge.llm import LLMJudge
from hone.judge.verifier import VerifierJudge, verdicts_to_pair
from hone.records import Generation, Task, Verdict


class CompositeJudge:
    def __init__(self, verifier: VerifierJudge, llm: LLMJudge, second_opinion: bool = False):
        self.verifier = verifier
        self.llm = llm
        self.second_opinion = second_opinion
        self.name = f"composite:{llm.name}"
        self.parallelism = llm.parallelism

    def _own(self, verdict: Verdict, decided_by: str) -> Verdict:
        evidence = verdict.evidence.model_copy(update={"decided_by": decided_by})
        return verdict.model_copy(update={"judge": self.name, "evidence": evidence})

    async def grade(self, task: Task, generation: Generation) -> Verdict:
        verdict = await self.verifier.decide(task, generation)
        if verdict is None:
            return self._own(await self.llm.grade(task, generation), self.llm.name)
        if self.second_opinion and verdict.verdict in ("pass", "fail"):
            other = await self.llm.grade(task, generation)
            verdict.evidence.second_opinion = SecondOpinion(judge=other.judge, verdict=other.verdict,
                                                            reason=other.reason,
                                                            agrees=other.verdict == verdict.verdict)
        return self._own(verdict, verdict.judge)

    async def compare(self, task: Task, a: Generation, b: Generation) -> Verdict:
        va = await self.verifier.decide(task, a)
        vb = await self.verifier.decide(task, b) if va is not None else None
        if va is None or vb is None:
            return self._own(await self.llm.compare(task, a, b), self.llm.name)
        pair = verdicts_to_pair(self.name, a, b, va, vb)
        if pair.verdict == "error":
            return error_verdict(a, self.name, pair.reason, pair.evidence.get("error_kind", "internal"))
        return pair

    def summary(self) -> dict:
        return {"judge": self.name, "llm": self.llm.summary()}

    async def aclose(self) -> None:
        await self.llm.aclose()
