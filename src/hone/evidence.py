"""What a verdict's evidence holds: one typed model per kind of judge, told apart by `kind`.

    math      hone.grade.math (math-verify)        choice    hone.grade.choice
    code      hone.grade.code (the sandbox)        llm       an LLM judge's grade
    pairwise  win / tie / loss of A against B      error     a judge that could not decide (fail-closed)
    other     a judge Hone does not know (hand-written or foreign verdict files)

Files written before `kind` existed are read by inferring it from the judge's name and the keys present. Keys a
model does not declare are kept (nothing an older or newer Hone wrote is lost) but nothing reads them blind:
the self-critique feedback is built from declared diagnostic fields only (hone.critique.feedback), so a key a
new grader adds cannot carry the reference to the model. Evidence still reads like the dict it used to be
(`evidence["outcome"]`, `evidence.get("uid")`, `"truncated" in evidence`); fields that are None are absent.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_serializer
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12


class SecondOpinion(TypedDict):
    """An LLM's verdict on an item a verifier decided (composite judge with second_opinion)."""

    judge: str
    verdict: str
    reason: str
    agrees: bool


class LLMCall(TypedDict, total=False):
    """Which prompt template an LLM answered, under which cache keys, after how many asks."""

    template: str
    cache_keys: list[str]
    asks: int


class _Evidence(BaseModel):
    model_config = ConfigDict(extra="allow")

    judged_sha256: str | None = None  # hash of exactly the answer judged
    decided_by: str | None = None  # composite judge: which judge decided
    second_opinion: SecondOpinion | None = None

    @model_serializer(mode="wrap")
    def _without_none(self, handler: Any) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}

    def get(self, key: str, default: Any = None) -> Any:
        if key in type(self).model_fields:
            value = getattr(self, key)
        else:
            value = (self.model_extra or {}).get(key)
        return default if value is None else value

    def __getitem__(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None


class MathEvidence(_Evidence):
    kind: Literal["math"] = "math"
    gold: str | None = None  # ground truth: never shown in self-critique
    method: str | None = None
    extracted: str | None = None  # the final answer read from the output
    region: str | None = None  # where it was looked for, when it commits to none (not shown in self-critique)
    truncated: bool | None = None  # the output hit the token limit
    seconds: float | None = None


class ChoiceEvidence(_Evidence):
    kind: Literal["choice"] = "choice"
    gold: str | None = None  # ground truth: never shown in self-critique
    method: str | None = None  # how the option was read (answer phrase, leading letter, option text, ...)
    extracted: str | None = None  # the option letter read from the output
    truncated: bool | None = None


class CodeEvidence(_Evidence):
    kind: Literal["code"] = "code"
    outcome: str | None = None  # pass | fail | timeout | error
    extracted: str | None = None  # how the program was taken from the output
    truncated: bool | None = None
    program_chars: int | None = None
    style: str | None = None  # humaneval | asserts
    calls: int | None = None  # calls the tests made into the candidate
    stdout_tail: str | None = None
    stderr_tail: str | None = None
    seconds: float | None = None
    sandbox: str | None = None  # the level asked for: strict | weak
    isolation: str | None = None  # what the sandbox could do on this machine
    isolation_notes: list[str] | None = None
    uid: int | None = None
    nonce: str | None = None


class LLMGradeEvidence(_Evidence):
    kind: Literal["llm"] = "llm"
    template: str | None = None
    cache_keys: list[str] | None = None
    asks: int | None = None


class PairwiseEvidence(_Evidence):
    kind: Literal["pairwise"] = "pairwise"
    b_sha256: str | None = None
    b_model: str | None = None
    b_sample: int | None = None
    a_first: str | None = None  # A's outcome when shown first
    a_second: str | None = None  # ... and when shown second
    consistent: bool | None = None  # both orders agreed
    a_first_call: LLMCall | None = None
    a_second_call: LLMCall | None = None


class ErrorEvidence(_Evidence):
    kind: Literal["error"] = "error"
    error_kind: str = "internal"  # api | budget | internal | invalid_reply | generation | no_verifier | ...
    retryable: bool = False  # a later run may fix it (hone.judge.base.RETRYABLE_KINDS)


class OtherEvidence(_Evidence):
    kind: Literal["other"] = "other"


Evidence = Annotated[Union[MathEvidence, ChoiceEvidence, CodeEvidence, LLMGradeEvidence, PairwiseEvidence,
                           ErrorEvidence, OtherEvidence], Field(discriminator="kind")]
EVIDENCE_KINDS = (MathEvidence, ChoiceEvidence, CodeEvidence, LLMGradeEvidence, PairwiseEvidence, ErrorEvidence,
                  OtherEvidence)


def infer_kind(judge: str, evidence: dict[str, Any]) -> str:
    """The kind of evidence written before `kind` existed, from the judge's name and the keys present."""
    if "error_kind" in evidence:
        return "error"
    if "b_sha256" in evidence:
        return "pairwise"
    source = str(evidence.get("decided_by") or judge)  # a composite judge names who decided
    for kind in ("math", "code", "choice"):
        if source.startswith(f"verifier:{kind}@"):
            return kind
    if "template" in evidence or "cache_keys" in evidence:
        return "llm"
    return "other"


def with_kind(judge: str, value: Any) -> Any:
    """A dict without `kind` gets the inferred one; typed evidence and anything else pass through."""
    if isinstance(value, dict) and "kind" not in value:
        return {**value, "kind": infer_kind(judge, value)}
    return value
