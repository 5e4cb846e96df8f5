"""The second grader: a strict, deliberately simple reading of an answer, independent of the verifiers.

The verifiers (math-verify, the choice rules) are clever, and a clever grader has blind spots a model under
training will find. This reader shares no code with them: for math it takes one number after the last
final-answer marker, or the number the answer ends with (lm-evaluation-harness's strict-match style); for a
choice it takes the letter the answer region starts with. Where the two readings disagree on an answer, one
of them is wrong, and a model whose samples disagree more round after round is learning its grader
(`hone.grade.gap`). It never decides a verdict; it only watches.
"""

from __future__ import annotations

import re
import string
from decimal import Decimal, InvalidOperation

from hone.records import Generation, Task

STRICT_READER_VERSION = "1"
STRICT_READER = f"strict@{STRICT_READER_VERSION}"

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
_MATH_MARKER = re.compile(r"####|\\boxed\{|(?i:\bthe (?:final )?answer is\b|\bfinal answer\b\s*:?|\banswer\s*:)")
_AFTER_MARKER = re.compile(rf"^[\s:$*({{\\]*({_NUMBER})")
_AT_END = re.compile(rf"({_NUMBER})[\s.!$*)}}\\]*$")
_CHOICE_MARKER = re.compile(r"(?i)\banswer\s*(?:is|:)")
_LEADING_LETTER = re.compile(r"^[\s:*_(\[]*([A-Z])(?![A-Za-z])")


def _number(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None


def _reference_number(reference: str) -> Decimal | None:
    """The reference as one plain number (a GSM8K solution at its `####`), or None when it is not one."""
    text = reference.rsplit("####", 1)[-1].strip()
    return _number(text) if re.fullmatch(_NUMBER, text) else None


def _math_number(output: str) -> Decimal | None:
    markers = list(_MATH_MARKER.finditer(output))
    if markers:
        m = _AFTER_MARKER.match(output[markers[-1].end():])
    else:
        m = _AT_END.search(output.strip())
    return _number(m.group(1)) if m else None


def _choice_letter(output: str, letters: str) -> str | None:
    markers = list(_CHOICE_MARKER.finditer(output))
    region = output[markers[-1].end():] if markers else output
    m = _LEADING_LETTER.match(region)
    return m.group(1) if m and m.group(1) in letters else None


def strict_reading(task: Task, generation: Generation) -> bool | None:
    """True / False: the strict reading of this answer is / is not the reference; None where this reader has no
    reading to offer (code and open tasks, a reference that is not one plain number, a failed generation)."""
    if generation.finish_reason == "error" or task.reference is None:
        return None
    if task.kind == "math":
        gold = _reference_number(task.reference)
        if gold is None:
            return None
        return _math_number(generation.output) == gold
    if task.kind == "choice":
        letters = string.ascii_uppercase[: len(task.options or [])]
        return _choice_letter(generation.output, letters) == task.reference
    return None
