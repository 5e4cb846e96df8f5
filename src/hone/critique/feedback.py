"""What the model is told about its failure: the judge's reason and what diagnoses the answer, reference withheld.

The feedback is built from an allow-list of typed evidence fields (what the grader read from the answer, how
the tests ended, whether the output was cut off); ground truth and anything a grader adds later are never
shown, because they are not on the list. A judge that saw the ground truth often quotes it ("expected 42, got
41"): in self-critique mode every occurrence of the reference in the text shown (numbers compared by value) is
also replaced by a placeholder, so the rewrite cannot copy it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hone.evidence import (ChoiceEvidence, CodeEvidence, ErrorEvidence, LLMGradeEvidence, MathEvidence,
                           OtherEvidence, PairwiseEvidence)
from hone.records import Task, Verdict

WITHHELD = "[withheld]"
# Per kind of evidence, the fields that diagnose the answer, in the order shown. Nothing else reaches the model.
SHOWN: dict[type, tuple[str, ...]] = {
    MathEvidence: ("extracted", "truncated"),
    ChoiceEvidence: ("extracted", "truncated"),
    CodeEvidence: ("outcome", "extracted", "truncated", "stdout_tail", "stderr_tail"),
    LLMGradeEvidence: (),  # the judge's reason says it all
    PairwiseEvidence: (),
    ErrorEvidence: (),
    OtherEvidence: (),  # a judge Hone does not know: its keys are not known to be free of ground truth
}
MAX_VALUE_CHARS = 600
_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?![\w])")


def _as_number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def withhold_reference(text: str, reference: str | None) -> str:
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
    for key in SHOWN[type(verdict.evidence)]:
        value = getattr(verdict.evidence, key)
        if value not in (None, "", [], {}):
            lines.append(f"{key}: {_render_value(value)}")
    text = "\n".join(lines) or "The answer was judged incorrect (the checker gave no detail)."
    return text if reveal_reference else withhold_reference(text, task.reference)
