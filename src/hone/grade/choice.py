"""Grade a multiple-choice answer: find which option the answer chose, compare it with the reference letter.

No LLM: the choice is read from the answer by rules, most explicit first — an answer phrase ("the answer is
(B)", "Answer: B"), then an answer that starts with a letter ("B", "(B)", "B. text"), then the text of exactly
one option. An answer that names no option, or names two by their text, is a fail that says so.
"""

from __future__ import annotations

import re
from typing import Any

from hone.evidence import ChoiceEvidence
from hone.hashing import text_sha256
from hone.records import Generation, Task, Verdict

CHOICE_GRADER_VERSION = "1"
CHOICE_JUDGE = f"verifier:choice@{CHOICE_GRADER_VERSION}"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# The letter itself is case-sensitive: "the answer is a bit long" names no option.
_PHRASE = re.compile(r"(?i)\banswer\s*(?:is|:|=)?\s*(?:option|choice)?\s*[:\-]?\s*[\(\[\*]*\s*"
                     r"(?-i:([A-Z]))(?![A-Za-z])")
_OPTION_WORD = re.compile(r"(?i)\b(?:option|choice)\s+\(?(?-i:([A-Z]))\)?(?![A-Za-z])")
_LEADING = re.compile(r"^\W{0,3}([A-Z])(?:\s*$|[\)\].:,]|\s+-)")


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def extract_choice(answer: str, options: list[str]) -> tuple[str | None, str]:
    """(letter or None, how it was found) for `answer` to a task with `options`."""
    letters = LETTERS[: len(options)]
    text = answer.strip()
    for pattern, how in ((_PHRASE, "answer phrase"), (_OPTION_WORD, "option named")):
        found = [m.group(1) for m in pattern.finditer(text) if m.group(1) in letters]
        if found:
            return found[-1], how  # the last one is the final answer after any reasoning
    m = _LEADING.match(text)
    if m and m.group(1) in letters:
        return m.group(1), "leading letter"
    said = _normal(text)
    hits = [letters[i] for i, o in enumerate(options) if _normal(o) and f" {_normal(o)} " in f" {said} "]
    if len(hits) == 1:
        return hits[0], "option text"
    if len(hits) > 1:
        return None, f"the answer names several options ({', '.join(hits)})"
    return None, "no option could be extracted"


def grade_choice(task: Task, generation: Generation) -> Verdict:
    """pass when the chosen option is the reference letter."""
    base: dict[str, Any] = {"id": generation.id, "sample": generation.sample, "judge": CHOICE_JUDGE}
    evidence = ChoiceEvidence(gold=task.reference, judged_sha256=text_sha256(generation.output))
    if generation.finish_reason == "error":
        return Verdict(**base, verdict="error", reason=f"generation failed: {generation.output[:300]}",
                       evidence=evidence)
    letter, how = extract_choice(generation.output, task.options or [])
    evidence.extracted, evidence.method = letter, how
    if "loglik" in generation.params:
        evidence.method = "log-likelihood of each option"
    if letter is None:
        return Verdict(**base, verdict="fail", score=0.0, reason=how, evidence=evidence)
    ok = letter == task.reference
    return Verdict(**base, verdict="pass" if ok else "fail", score=1.0 if ok else 0.0,
                   reason=f"chose {letter} ({how}); the reference is {task.reference}", evidence=evidence)
