"""Grade a multiple-choice answer: find the one option the answer commits to, compare it with the reference letter.

No LLM: the choice is read by rules. An answer statement names letters: an answer phrase ("the answer is (B)",
"Answer: **B**", "the correct option is (C) Paris", "I pick C") or letters the answer starts with ("B", "(B)",
"C)", "B. text", "A, B, C, D"). Without a statement, "option C" / "choice C" mentions count; without those,
the text of exactly one option. The answer commits to one option only when

- every statement names the same single letter (`C ... so the answer is C`); a statement that names several
  (`A, B, C, D`, `(A) (B)`, `A or B`) is a hedge, and statements that disagree (one `Answer: X` line per letter)
  conflict unless the later one retracts the earlier ("wait", "actually", "or rather", ...);
- it does not negate that option (`not B`, `B is wrong`, `It is not acne.` for the option "acne").

Decorations (bold, brackets, a trailing period) are taken off first; the letter itself is case-sensitive, so
"the answer is a bit long" names no option.
"""

from __future__ import annotations

import re
from typing import Any

from hone.evidence import ChoiceEvidence
from hone.grade.final_answer import RETRACTION, normalise
from hone.hashing import text_sha256
from hone.records import Generation, Task, Verdict

# 2: exactly one option: several letters, disagreeing answer lines and a negated option fail; decorated letters
# (`**C**`, `C)`) are read; 3: "Wait, C" after an answer hedges it, and `B!` is read as B
CHOICE_GRADER_VERSION = "3"
CHOICE_JUDGE = f"verifier:choice@{CHOICE_GRADER_VERSION}"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

_LETTER = r"[\(\[]?[ \t]*(?-i:[A-Z])[ \t]*[\)\]]?(?![A-Za-z])"
_LETTER_LIST = re.compile(rf"{_LETTER}(?:[ \t]*(?:,|/|&|;|\bor\b|\band\b|[ \t])[ \t]*"
                          rf"(?:(?:option|choice)[ \t]+)?{_LETTER})*", re.I)
_PHRASE = re.compile(r"(?i)\b(?:answer\s*(?:is|would\s+be|should\s+be|must\s+be|:|=)?|"
                     r"(?:correct|right|final|best)\s+(?:option|choice)\s*(?:is|would\s+be|:|=)?|"
                     r"I\s*(?:would|'d|will|'ll)?\s*(?:choose|pick|select|go\s+with)|"
                     r"\b(?:it|that)\s*(?:'s|\s+is|\s+must\s+be))\s*(?:option|choice)?\s*[:\-]?\s*")
_CLAIMED = re.compile(r"(?<![A-Za-z])[\(\[]?((?-i:[A-Z]))[\)\]]?\s+is\s+(?:the\s+)?(?:correct|right|best|answer)\b",
                      re.I)
_OPTION_LINE = re.compile(r"(?m)^\W{0,3}([A-Z])[\).:]\s*(.*)$")
_HEDGED_LETTER = re.compile(r"(?i)\b(?:or|maybe|perhaps|possibly|alternatively|otherwise|actually|rather|wait|also|"
                            r"so\s+is|as\s+well\s+as)\b\W*"
                            r"(?:rather\s+)?(?:(?:option|choice)\s+)?[\(\[]?((?-i:[A-Z]))[\)\]]?(?![A-Za-z])")
_UNWRAP = re.compile(r"\\(?:boxed|fbox|mathbf|mathrm)\s*\{\s*([^{}]*?)\s*\}")
_MENTION = re.compile(r"(?i)\b(?:option|choice)\s+")
_LEADING = re.compile(r"^\W{0,3}((?-i:[A-Z]))(?:[ \t]*(?:$|\n)|[\)\].:,/!]|\s+-"
                      r"|\s+(?:or|and|&)\s+[\(\[]?[A-Z](?![A-Za-z]))")
_NEGATED_LETTER = re.compile(r"(?i)(?:\b(?:not|never|except|nor)\b|n't\b)\s+(?:(?:option|choice|answer)\s+)?[\(\[]?\s*"
                             r"(?-i:([A-Z]))\s*[\)\]]?(?![A-Za-z])|(?:\b(?:option|choice)\s+)?[\(\[]?(?<![A-Za-z])"
                             r"(?-i:([A-Z]))[\)\]]?\s+(?:is|was)\s+(?:wrong|incorrect|not\b)")
_NEGATION_BEFORE = re.compile(r"(?i)(?:\b(?:not|never|nor)\b|n't\b)\W+(?:\w+\W+){0,2}$")


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _statements(text: str, options: list[str]) -> tuple[list[tuple[int, list[str]]], str]:
    """(position, letters named) for each answer statement, in order, and how they were found."""
    letters = LETTERS[: len(options)]

    def named(start: int) -> list[str]:
        m = _LETTER_LIST.match(text, start)
        found = re.findall(r"(?<![A-Za-z])[A-Z](?![A-Za-z])", m.group()) if m else []
        return list(dict.fromkeys(x for x in found if x in letters))

    said = [(m.start(), ls) for m in _PHRASE.finditer(text) if (ls := named(m.end()))]
    said += [(m.start(), [m.group(1)]) for m in _CLAIMED.finditer(text) if m.group(1) in letters]
    how = "answer phrase"
    lead = _LEADING.match(text)
    if lead and (ls := named(lead.start(1))):
        said.insert(0, (0, ls))
        how = how if len(said) > 1 else "leading letter"
    for line in _OPTION_LINE.finditer(text):  # a line that is only an option ("B. Rome"), as a listing of them
        letter, rest = line.group(1), _normal(line.group(2))
        if line.start() and letter in letters and rest in ("", _normal(options[letters.index(letter)])):
            said.append((line.start(), [letter]))
    if not said:
        said = [(m.start(), ls) for m in _MENTION.finditer(text) if (ls := named(m.end()))]
        how = "option named"
    return sorted(said), how


def _negated(text: str, start: int, letters: str) -> set[str]:
    return {g for m in _NEGATED_LETTER.finditer(text, start) for g in m.groups() if g and g in letters}


def extract_choice(answer: str, options: list[str]) -> tuple[str | None, str]:
    """(letter or None, how it was found, or why no single option was) for `answer` to a task with `options`."""
    letters = LETTERS[: len(options)]
    text = _UNWRAP.sub(r"\1", normalise(answer)).replace("$", "").strip()
    if re.fullmatch(r"\W*[a-z]\W*", text):  # a lone lower-case letter is that letter ("b")
        text = text.upper()
    said, how = _statements(text, options)
    if said:
        final_at, final = said[-1]
        if len(final) > 1:
            return None, "hedged: the answer names several options"
        if len(said) > 1 and how == "option named" and len({ls[0] for _, ls in said}) > 1:
            return None, "hedged: the answer names several options"
        for (at, earlier), (later, _) in zip(said, said[1:]):
            if earlier != final and not RETRACTION.search(text, at, later):
                return None, "conflicting answers: an earlier answer names another option"
        if final[0] in _negated(text, final_at, letters):
            return None, "negated: the answer says it is not the option it names"
        offered = {m.group(1) for m in _HEDGED_LETTER.finditer(text, final_at)} & set(letters) - {final[0]}
        if offered - _negated(text, final_at, letters):
            return None, "hedged: the answer names several options"
        return final[0], how
    said_text = _normal(text)
    hits = [(letters[i], m) for i, o in enumerate(options) if (option := _normal(o))
            for m in re.finditer(rf"(?<!\w){re.escape(option)}(?!\w)", said_text)]
    chosen = {letter for letter, m in hits if not _NEGATION_BEFORE.search(said_text[:m.start()])}
    ruled_out = {letter for letter, _ in hits} - chosen
    if len(chosen) == 1:
        return chosen.pop(), "option text"
    if len(chosen) > 1:
        return None, "hedged: the answer names several options"
    if ruled_out := ruled_out | _negated(text, 0, letters):
        return None, "negated: the answer only says which option it is not"
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
