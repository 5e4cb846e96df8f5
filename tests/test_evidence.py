"""Typed verdict evidence (issue 15): one model per kind, old files still read, and self-critique feedback built
from an allow-list, so no reference text can reach the model whatever field a grader puts it in."""

from __future__ import annotations

import json
import types
import typing

import pytest
from typing_extensions import is_typeddict

from hone.critique.feedback import SHOWN, WITHHELD, describe_failure
from hone.evidence import EVIDENCE_KINDS, CodeEvidence, ErrorEvidence, MathEvidence, OtherEvidence
from hone.records import Task, Verdict, dumps

JUDGES = {"math": "verifier:math@1", "choice": "verifier:choice@1", "code": "verifier:code@1",
          "llm": "anthropic:claude-haiku-5-5", "pairwise": "anthropic:claude-haiku-5-5", "error": "verifier",
          "other": "exact-number"}


def _fill(annotation, text: str):
    """A value of `annotation` whose every string is `text`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return _fill(next(a for a in args if a is not type(None)), text)
    if origin is list:
        return [_fill(args[0], text)]
    if is_typeddict(annotation):
        return {k: _fill(t, text) for k, t in typing.get_type_hints(annotation).items()}
    if origin is typing.Literal:
        return args[0]
    return {str: text, bool: True, int: 7, float: 1.5}[annotation]


def _evidence(cls, text_for: typing.Callable[[str], str]):
    """Every declared field filled (strings from `text_for(field)`), plus keys no model declares."""
    values = {name: _fill(f.annotation, text_for(name)) for name, f in cls.model_fields.items() if name != "kind"}
    extras = {k: text_for(k) for k in ("reference", "expected", "note", "canonical_solution")}
    return cls(**values, **extras)


@pytest.mark.parametrize("reference", ["98765", "Zanzibar-31337", "def f(x):\n    return x + 1"])
@pytest.mark.parametrize("cls", EVIDENCE_KINDS, ids=lambda c: c.__name__)
def test_no_reference_text_reaches_the_feedback_from_any_field_of_any_kind(cls, reference):
    task = Task(id="t", kind="math", prompt="?", reference=reference)
    evidence = _evidence(cls, lambda name: f"{name}: the reference is {reference}!")
    for verdict in ("fail", "error"):
        v = Verdict(id="t", judge=JUDGES[evidence.kind], verdict=verdict, reason=f"expected {reference}",
                    evidence=evidence)
        v = Verdict.model_validate_json(dumps(v))  # as the critique stage reads it from a file
        text = describe_failure(task, v)
        assert reference not in text and WITHHELD in text


@pytest.mark.parametrize("cls", EVIDENCE_KINDS, ids=lambda c: c.__name__)
def test_only_the_allow_listed_fields_are_shown(cls):
    shown = SHOWN[cls]
    assert set(shown) <= set(cls.model_fields) and "kind" not in shown
    evidence = _evidence(cls, lambda name: f"<{name} shown>" if name in shown else "LEAKED")
    text = describe_failure(Task(id="t", kind="math", prompt="?", reference="1"),
                            Verdict(id="t", judge=JUDGES[evidence.kind], verdict="fail", evidence=evidence))
    assert "LEAKED" not in text  # ground truth, bookkeeping and keys a grader adds later stay out
    for name in shown:
        value = getattr(evidence, name)
        assert (f"<{name} shown>" in text) if isinstance(value, str) else (f"{name}: " in text)


def test_every_kind_has_an_allow_list():
    assert set(SHOWN) == set(EVIDENCE_KINDS)


@pytest.mark.parametrize("judge, raw, cls", [
    ("verifier:math@1", {"gold": "4", "extracted": "5", "seconds": 0.1}, MathEvidence),
    ("composite:anthropic:x", {"gold": "4", "extracted": "5", "decided_by": "verifier:math@1"}, MathEvidence),
    ("verifier:code@3", {"outcome": "timeout", "isolation": "full", "calls": 2}, CodeEvidence),
    ("anthropic:x", {"judged_sha256": "ab", "error_kind": "api", "retryable": True}, ErrorEvidence),
    ("exact-number", {"expected": "4", "got": "5"}, OtherEvidence),
])
def test_files_written_before_kind_are_read_with_the_kind_inferred(judge, raw, cls):
    line = json.dumps({"id": "t", "judge": judge, "verdict": "fail", "evidence": raw})
    v = Verdict.model_validate_json(line)
    assert type(v.evidence) is cls
    assert {k: v.evidence[k] for k in raw} == raw  # nothing lost, read as before
    again = json.loads(dumps(v))["evidence"]
    assert again == {**raw, "kind": v.evidence.kind}  # None fields are not written
    assert Verdict.model_validate_json(dumps(v)) == v


def test_evidence_is_typed_on_every_write():
    v = Verdict(id="t", judge="verifier:math@1", verdict="fail", evidence={"extracted": "5"})
    with pytest.raises(ValueError, match="seconds"):
        Verdict(id="t", judge="verifier:math@1", verdict="fail", evidence={"seconds": "slow"})
    v.evidence = {"judged_sha256": "cd"}  # assignment is validated too
    assert isinstance(v.evidence, MathEvidence) and v.evidence.judged_sha256 == "cd"
    with pytest.raises(ValueError, match="kind"):
        Verdict(id="t", judge="j", verdict="fail", evidence={"kind": "astrology"})
    assert "truncated" not in v.evidence and v.evidence.get("truncated", False) is False
    copied = v.model_copy(update={"evidence": {"extracted": "5"}})  # model_copy does not validate
    assert json.loads(dumps(copied))["evidence"] == {"extracted": "5", "kind": "math"}  # written as it is read
