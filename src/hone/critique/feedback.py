"""What the model is told about its failure: the judge's reason and the verifier's evidence, reference withheld.

A judge that saw the ground truth often quotes it ("expected 42, got 41"). In self-critique mode every
evidence field that holds ground truth is dropped and every occurrence of the reference in the remaining
text (numbers compared by value) is replaced by a placeholder, so the rewrite cannot copy it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hone.records import Task, Verdict

WITHHELD = "[withheld]"
# Evidence keys that carry ground truth rather than a diagnosis of the answer.
GROUND_TRUTH_KEYS = frozenset({"reference", "expected", "gold", "target", "answer_key", "solution",
                               "canonical_solution", "correct", "correct_answer", "ground_truth", "gold_parsed",
                               "expected_answer", "reference_answer"})
# Bookkeeping that says nothing about what is wrong with the answer.
BOOKKEEPING_KEYS = frozenset({"judged_sha256", "b_sha256", "method", "seconds", "retryable", "error_kind",
                              "decided_by", "program_chars", "style", "second_opinion", "consistent"})
MAX_VALUE_CHARS = 600
_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?![\w])")


def _as_number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def redact(text: str, reference: str | None) -> str:
    """`text` with the reference (verbatim, and as a number in any spelling) replaced by WITHHELD."""
    ref = (reference or "").strip()
    if not ref:
        return text
    left = r"(?<!\w)" if re.match(r"\w", ref[0]) else ""
    right = r"(?!\w)" if re.match(r"\w", ref[-1]) else ""
    text = re.sub(left + re.escape(ref) + right, WITHHELD, text)
    value = _as_number(ref)
    if value is not None:
        text = _NUMBER.sub(lambda m: WITHHELD if _as_number(m.group()) == value else m.group(), text)
    return text


def _render_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + " ..."


def describe_failure(task: Task, verdict: Verdict, reveal_reference: bool = False) -> str:
    """The feedback text shown in the critique request."""
    lines = []
    if verdict.reason.strip():
        lines.append(verdict.reason.strip())
    for key, value in sorted(verdict.evidence.items()):
        if value in (None, "", [], {}) or key in BOOKKEEPING_KEYS:
            continue
        if not reveal_reference and key.lower() in GROUND_TRUTH_KEYS:
            continue
        lines.append(f"{key}: {_render_value(value)}")
    text = "\n".join(lines) or "The answer was judged incorrect (the checker gave no detail)."
    return text if reveal_reference else redact(text, task.reference)
