"""The judge spec, parsed once into a `JudgeSpec` that every caller reads (the factory, the judge stage, the
loop config) instead of splitting the string again.

    verifier                   hone.grade's verifiers only; items they cannot decide are errors
    NAME[:ARG]                 an LLM backend from hone.judge.registry (anthropic[:MODEL], openai:MODEL@URL,
                               local:DIR)
    composite[:NAME[:ARG]]     verifiers first, the LLM (default: anthropic) where they cannot decide
"""

from __future__ import annotations

from dataclasses import dataclass

from hone.errors import HoneError
from hone.judge.registry import BACKENDS


def usage() -> str:
    return " | ".join([*(e.usage for e in BACKENDS.values()), "verifier", "composite[:<llm spec>]"])


@dataclass(frozen=True)
class JudgeSpec:
    text: str  # as written; what stage fingerprints record
    verifiers: bool  # the verifiers decide what they can (verifier, composite)
    backend: str | None  # registry name of the LLM backend; None: verifiers only
    arg: str = ""  # what follows `NAME:` (the backend reads it)

    @classmethod
    def parse(cls, spec: "str | JudgeSpec") -> "JudgeSpec":
        if isinstance(spec, JudgeSpec):
            return spec
        if spec == "verifier":
            return cls(spec, True, None)
        head, _, rest = spec.partition(":")
        composite = head == "composite"
        name, _, arg = (rest or "anthropic").partition(":") if composite else (head, "", rest)
        if name not in BACKENDS:
            raise HoneError(f"--judge {spec!r}: unknown judge (use {usage()})")
        return cls(spec, composite, name, arg)

    @property
    def llm(self) -> str | None:
        """The LLM part as a spec of its own (`anthropic`, `openai:m@url`), None for the verifiers alone."""
        if self.backend is None:
            return None
        return f"{self.backend}:{self.arg}" if self.arg else self.backend

    @property
    def costs_money(self) -> bool:
        """An LLM judge other than a free one (the verifiers and `local:DIR` cost nothing)."""
        return self.backend is not None and not BACKENDS[self.backend].free

    def require_budget(self, budget_usd: float | None, waived: bool, cap: str, waive: str) -> None:
        """The one budget rule (`hone loop`, `hone bench --judge`): a judge that costs money runs under a cap in USD,
        or with the cap waived in so many words. `cap` and `waive` say how, in the caller's own terms."""
        if self.costs_money and budget_usd is None and not waived:
            raise HoneError(f"the judge {self.text!r} costs money; {cap}, or {waive} to run without one")

    @property
    def model_dir(self) -> str | None:
        """The local model folder the judge reads (an input of the judge stage), if any."""
        return self.arg if self.backend is not None and BACKENDS[self.backend].model_dir else None

    def __str__(self) -> str:
        return self.text
