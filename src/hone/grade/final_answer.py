"""Read the one final answer a math output commits to, or say why it commits to none.

The answer region is the clause after the last final-answer marker (`####`, `\\boxed{}`, "the answer is",
"answer:", "final answer"), otherwise the last sentence that holds a number. In it, numeric candidates are
found by a light tokeniser (numbers, LaTeX fractions and roots, joined by operators). A restated expression
followed by its value (`11 + 6 - 2 = 15`, `..., which equals 15`, `40 minutes + 20 minutes = 60 minutes`) is
a calculation, not a candidate. After a marker the committed value is the first candidate; without one it is
the last result of an equation (`9 + 6 = 15 liters of the 24`) unless an expression follows it, else the last
candidate. The region does not commit when

- it is hedged: the committed value and a neighbouring different value are offered as alternatives, a list,
  a set or a range (`14 or 15`, `13, 14 or 15`, `{14, 15}`, `between 14 and 16`, `1, 2, ..., 100`,
  `15 (16 if ...)`), the value is a bound or an approximation (`at least 15`, `about 15`, `15 or more`,
  `probably 15`), or the answer says it is not sure;
- it negates the value (`not 15`, `16 (not 15)`, `15 is wrong`);
- it is a question (`15?`, `The answer is 15, right?`), or it ends at a final-answer marker with nothing after it
  (an answer cut off before its value: `11 + 6 = 17. The answer is`);
- an earlier final-answer marker gave another value and nothing between them retracts it
  (`The answer is 17.` then `\\boxed{15}`); "wait", "actually", "correction", ... withdraw an earlier one.

Text inside a `<think>` block is scratch work and is not read. Whether the committed text is a value or an
unevaluated expression is decided on math-verify's parse (hone.grade.math), not here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

_BRACE = r"\{(?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*\}"
_NUMBER = (r"(?<![\w.])(?:\d{1,3}(?:,\d{3})+(?!\d)|\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?![\d,]|\.\d)|\d+)(?:\.\d+)?"
           r"(?!\.?\d)(?!(?:st|nd|rd|th)\b)(?![²³¹⁰-⁹])"
           r"|(?<![\w.])\.\d+")
_ATOM = (rf"\\[dt]?frac\s*{_BRACE}\s*{_BRACE}|\\sqrt(?:\[\d+\])?\s*{_BRACE}|\\pi\b|π|√\d+"
         rf"|\{{\s*-?\d+(?:\.\d+)?\s*\}}"
         rf"|{_NUMBER}")
_TERM = rf"[(\[]*\s*[-−]?\s*(?:{_ATOM})(?:\s*%)?(?:\s*[)\]])*"
_OPERATOR = r"(?<=%)\s*of\b\s*|\s*(?:\*\*|[+\-*/×÷·−–^]|\\cdot|\\times|\\div)\s*|\s*(?=\\sqrt|\\pi|\\[dt]?frac)"
_EXPRESSION = re.compile(rf"{_TERM}(?:(?:{_OPERATOR}){_TERM})*")
_HAS_OPERATOR = re.compile(r"[\d)}]\s*[-+*/×÷·−–^]|\\cdot|\\times|\\div|\\frac|\\sqrt|%\s*of")

# after an expression: it is restated and followed by its value, so it is not the answer itself
_EQUALS_AFTER_ANY = re.compile(r"^\s*,?\s*(?:(?:which|that|this|it)\s+)?"
                               r"(?:==?|equals?\b|is\s+equal\s+to\b|→|->|=>|⟹"
                               r"|\\Rightarrow|\\implies|\\to\b)", re.I)
# a number with its units inside a calculation ("40 minutes + 100 minutes = 140 minutes") is a term of it
_CHAIN_GOES_ON = re.compile(r"^\s*(?:(?:[A-Za-z]+(?:/[A-Za-z]+)?|[$€£%)\]])\s*){0,3}"
                            r"(?:[-+*/×÷·−–=]|\\cdot|\\times|\bx\b|"
                            r"\bequals\b)\s*[$€£(]*\s*\d")
_EXPLAINED_BY = re.compile(r"\s*\(?\s*=\s*[$€£]?\s*")
_STATED = re.compile(r"(?:==?|\bequals?|\bis\s+equal\s+to)\s*[$€£]?\s*$", re.I)
_EQUALS_AFTER_ARITHMETIC = re.compile(r"^\s*,?\s*(?:(?:which|that|this|it|and\s+this)\s+)?(?:is|are|gives|makes|"
                                      r"yields|comes\s+to|results\s+in|leaves|evaluates\s+to|works\s+out\s+to)\b",
                                      re.I)
_NEGATION_BEFORE = re.compile(r"(?:\b(?:not|never|nor|neither|except|excluding|(?:anything|everything|all)\s+but|"
                              r"other\s+than|apart\s+from|instead\s+of|rather\s+than)\b|n't\b|≠|\\neq?\b)"
                              r"(?:\W+\w+){0,2}?\W*$", re.I)
_NEGATION_AFTER = re.compile(r"^\W{0,3}\s*(?:is|was|would\s+be|are)\s+(?:not\b|wrong|incorrect|a\s+mistake)"
                             r"|^\W{0,3}\s*(?:isn't|wasn't|is\s+n't|≠|\\neq?\b)", re.I)
_BOUND_BEFORE = re.compile(r"(?:\b(?:approximately|approx\.?|about|around|roughly|nearly|almost|close\s+to|"
                           r"at\s+least|at\s+most|more\s+than|less\s+than|fewer\s+than|greater\s+than|over|under|"
                           r"up\s+to|no\s+more\s+than|no\s+less\s+than|upwards\s+of|somewhere\s+near|"
                           r"(?:could|might|may)\s+be|maybe|perhaps|possibly|probably|likely|guess|estimated?)"
                           r"|~|≈|≥|≤|>|<|\\approx|\\sim|\\geq?|\\leq?)\W{0,3}$", re.I)
_BOUND_AFTER = re.compile(r"^\s*(?:[A-Za-z]+\s+)?(?:or\s+(?:more|less|fewer|so|greater|higher|lower|above|below|over|"
                          r"under)\b|\+(?!\s*[\d(\\])|-?ish\b|and\s+(?:up|above|over|more)\b|at\s+(?:least|most)\b|"
                          r"plus\b(?!\s*[\d(])|\(?\s*(?:approx(?:imately|\.)?|roughly|about|or\s+so|estimated?|"
                          r"give\s+or\s+take|or\s+thereabouts|more\s+or\s+less)\b)",
                          re.I)
# two different values joined by these, in the final answer, are alternatives (a hedge)
_ALTERNATIVE = re.compile(r"\b(?:or|either|maybe|perhaps|possibly|probably|alternatively|otherwise|else|unless|"
                          r"depending|whether|wait|actually|rather|also|another|alternative\w*|possib\w*|"
                          r"includ\w*|among|such\s+as|for\s+(?:example|instance))\b|\be\.g\."
                          r"|\b(?:could|might|may)\s+(?:also\s+)?be\b|\bif\b[^,;]*[,;]|\\pm|±|\\in\b|\\cup|\\vee",
                          re.I)
_UNSURE = re.compile(r"\b(?:not\s+(?:sure|certain)|unsure|uncertain|no\s+idea|can't\s+be\s+sure|just\s+a\s+guess)\b",
                     re.I)
_CONDITION = re.compile(r"\b(?:if|unless|otherwise|depending|when)\b", re.I)
_OPEN_LIST = re.compile(r"(?:[,;]|\b(?:or|and|either))\s*$", re.I)
_LIST_SEPARATOR = re.compile(r"^\W*(?:[A-Za-z%]+\.?\W*)?(?:,|;|&|\band\b|\bto\b|\bthrough\b|\bthru\b|\buntil\b|"
                             r"[-–—|]|\.\.\.|…|\\[lc]?dots)(?:\W|\band\b)*$", re.I)
_CONTINUES = re.compile(r"^\W*(?:(?:but|and|so)\s+)?(?:or|maybe|perhaps|possibly|alternatively|otherwise|either|"
                        r"wait|actually|no|not|sorry|oops|correction|hmm)\b", re.I)
# between two final answers, these withdraw the earlier one
RETRACTION = re.compile(r"\b(?:wait|actually|rather|correction|correcting|corrected|mistake|oops|sorry|re-?check|"
                         r"double[- ]check|re-?calculate|re-?compute|re-?evaluate|let\s+me\s+re|(?:is|was)\s+wrong|"
                         r"incorrect|instead)\b|\bno\b\s*[,.!]", re.I)
_MARKER = re.compile(r"####|\\(?:boxed|fbox)\s*\{|\b(?:(?:final|correct|right)\s+answer\b(?:\s*(?:is\b|would\s+be\b|"
                     r"will\s+be\b|should\s+be\b|=|:))?|answer\s*(?:is\b|would\s+be\b|will\s+be\b|should\s+be\b|"
                     r"must\s+be\b|=|:))", re.I)
# `x = 15`, `total = 15`: the name is not part of the value (a unit after a number, `20 sheep = 260`, is kept)
_VARIABLE_ASSIGNMENT = re.compile(r"(?<![\w\\])[A-Za-z](?:_\{?\w+\}?)?\s*=\s*(?!=)"
                                  r"|(?<![\d%$/] )(?<![\d%$/])\b[A-Za-z]{2,}\s*=\s*(?!=)")
_SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)(?<!\betc)(?<!\bvs)(?<!\bMr)(?<!\bMrs)(?<!\bDr)(?<!\bSt)(?<!\bapprox)"
                            r"[.!?](?=\s|$)|\n")
_NORMALISE = [(re.compile(p), r) for p, r in (
    (r"(?s)<<[^<>]*>>", ""),  # GSM8K calculator annotations
    (r"```\w*|`", " "), (r"\*\*|__", ""), (r"\\(?:left|right|big|Big)\b", ""),
    (r"\\(?:text|mathrm|textbf|mathbf|operatorname)\s*\{([^{}]*)\}", r" \1 "),
    (r"\{,\}", ","), (r"\\[,!]", ""), (r"\\[;: ]", " "),
    (r"\\\$", "$"), (r"\\%", "%"), (r"\\[{}]", " "), (r"\\(?:dfrac|tfrac)", r"\\frac"),
    (r"\^\s*\{?\\circ\}?|°", ""), (r"\s+percent\b", "%"), (r"\\\(|\\\)|\\\[|\\\]", " "),
)]


@dataclass
class Candidate:
    text: str
    start: int
    end: int
    negated: bool = False
    bound: str | None = None  # the qualifier that makes it a bound or an approximation
    stated: bool = False  # it is the result of an equation (`... = 15`)
    after_restatement: bool = False  # a restated expression stands between it and the value before it


@dataclass
class Reading:
    """What the answer commits to: `committed` (the text of its one value), or `problem` (a readable sentence)
    of a `kind`: hedged | negated | question | conflict. A problem quotes no value of the answer: self-critique
    shows it with the reference withheld, and a withheld value would tell which one was right."""

    region: str
    candidates: list[Candidate] = field(default_factory=list)
    committed: str | None = None
    kind: str | None = None
    problem: str | None = None


def normalise(output: str) -> str:
    """The output with scratch work (`<think>`), code fences, bold and LaTeX spacing taken out."""
    text = output.rsplit("</think>", 1)[1] if "</think>" in output and output.rsplit("</think>", 1)[1].strip() \
        else output
    for pattern, repl in _NORMALISE:
        text = pattern.sub(repl, text)
    return text


def value_key(text: str) -> object:
    """A key equal for two renderings of the same plain value (`15`, `$15.00`, `\\frac{30}{2}`); else the text."""
    t = re.sub(r"(?<=\d)[, \u00a0\u202f](?=\d{3})", "", text).replace("$", "").replace("−", "-")
    t = re.sub(r"\s+", "", t).strip("()[]")
    pct = t.endswith("%")
    t = t.rstrip("%")
    m = re.fullmatch(r"\\frac\{(-?\d+)\}\{(\d+)\}", t)
    try:
        value = Fraction(int(m.group(1)), int(m.group(2))) if m else Fraction(t)
    except (ValueError, ZeroDivisionError):
        return t + ("%" if pct else "")
    return ("%", value) if pct else value


def _sentence_end(text: str, start: int) -> int:
    m = _SENTENCE_END.search(text, start)
    return m.end() if m else len(text)


def _box_end(text: str, start: int) -> int:
    """Index just past the brace that closes the box opened before `start` (len(text) when unclosed)."""
    depth = 1
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i + 1
    return len(text)


def _with_continuation(text: str, end: int) -> int:
    """Extend a clause over following sentences that go on hedging it ("15. Or maybe 16.")."""
    for _ in range(3):
        rest = text[end:]
        sentence = rest.lstrip()
        if not sentence or not _CONTINUES.match(sentence):
            break
        length = _sentence_end(sentence, 1)
        if not re.search(r"\d", sentence[:length]):
            break
        end += len(rest) - len(sentence) + length
    return end


def _balanced(text: str) -> str:
    """The text without unmatched brackets at its ends, and without brackets around the whole of it ("(15)")."""
    while re.fullmatch(r"\((?:[^()]*)\)|\[(?:[^\[\]]*)\]", text):
        text = text[1:-1].strip()
    while text.startswith(("(", "[")) and text.count("(") + text.count("[") > text.count(")") + text.count("]"):
        text = text[1:].lstrip()
    while text.endswith((")", "]")) and text.count(")") + text.count("]") > text.count("(") + text.count("["):
        text = text[:-1].rstrip()
    return text


def candidates(clause: str) -> list[Candidate]:
    """The numeric values a clause states, without the restated expressions that it follows with their value."""
    found: list[Candidate] = []
    previous_end, restated = 0, False
    matches = [m for m in _EXPRESSION.finditer(clause) if re.search(r"\d|\\pi|π", m.group())
               and not re.search(r"[A-Za-z]\s*\^\s*\{?$", clause[:m.start()])]  # not the exponent of a unit (m^2)
    explanation = None
    for m, following in zip(matches, [*matches[1:], None]):
        if m is explanation:
            previous_end = m.end()
            continue
        text = m.group().strip()
        after = clause[m.end():m.end() + 60]
        if following and not _HAS_OPERATOR.search(text) and _HAS_OPERATOR.search(following.group()) and \
                _EXPLAINED_BY.fullmatch(clause[m.end():following.start()]) and \
                not _EQUALS_AFTER_ANY.match(clause[following.end():following.end() + 60]):
            explanation = following  # `15 = 3 \cdot 5`: the value, then how it was made
        elif _EQUALS_AFTER_ANY.match(after) or _CHAIN_GOES_ON.match(after) or \
                (_HAS_OPERATOR.search(text) and _EQUALS_AFTER_ARITHMETIC.match(after)):
            previous_end, restated = m.end(), True
            continue
        before = clause[previous_end:m.start()]
        bound = _BOUND_BEFORE.search(before) or _BOUND_AFTER.match(after)
        found.append(Candidate(_balanced(text), m.start(), m.end(),
                               negated=bool(_NEGATION_BEFORE.search(before) or _NEGATION_AFTER.match(after)),
                               bound=bound.group().strip() if bound else None, stated=bool(_STATED.search(before)),
                               after_restatement=restated))
        previous_end, restated = m.end(), False
    return found


def _last_result(kept: list[Candidate]) -> Candidate:
    """Without a marker: the last result of an equation (`9 + 6 = 15 liters of the 24`), unless an expression
    follows it (the answer then ends on a restatement); else the last value."""
    stated = [i for i, c in enumerate(kept) if c.stated]
    if stated and not any(_HAS_OPERATOR.search(c.text) for c in kept[stated[-1] + 1:]):
        return kept[stated[-1]]
    return kept[-1]


def read_clause(clause: str, first: bool) -> Reading:
    """The one value `clause` commits to (`first`: the one nearest its marker; else the last), or the problem."""
    clause = _VARIABLE_ASSIGNMENT.sub("", clause)
    found = candidates(clause)
    reading = Reading(region=clause.strip(), candidates=found)

    def problem(kind: str, sentence: str) -> Reading:
        reading.kind, reading.problem = kind, sentence
        return reading

    if not found:
        return reading
    if clause.rstrip().rstrip("*$ )").endswith("?"):
        return problem("question", "not committed: the final answer is a question")
    if unsure := _UNSURE.search(clause):
        return problem("hedged", f"hedged: the final answer says {unsure.group()!r}")
    negated = [c for c in found if c.negated]
    kept = [c for c in found if not c.negated]
    if not kept:
        return problem("negated", "negated: the final answer only says what the value is not")
    if {value_key(c.text) for c in kept} & {value_key(c.text) for c in negated}:
        return problem("negated", "negated: the final answer both states and denies the same value")
    chosen = kept[0] if first else _last_result(kept)
    at = found.index(chosen)
    neighbours = found[max(at - 1, 0):at + 2]
    for a, b in zip(neighbours, neighbours[1:]):
        if a is b or a.negated or b.negated or value_key(a.text) == value_key(b.text):
            continue  # the chosen value and its neighbours: are they alternatives?
        between = clause[a.end:b.start]
        condition = re.split(r"[,.;)\n]", clause[b.end:], maxsplit=1)[0]  # "15 (16 if you count her)"
        listed = _LIST_SEPARATOR.match(between) and not b.after_restatement  # not "42 plates, so 86 + 42 = 128"
        if _ALTERNATIVE.search(between) or listed or _CONDITION.search(condition):
            return problem("hedged", "hedged: the final answer offers more than one value")
    if chosen.bound:
        return problem("hedged", f"hedged: {chosen.bound!r} makes the final answer a bound or an approximation, "
                                 "not one value")
    reading.committed = chosen.text
    return reading


@dataclass
class _Marker:
    start: int
    clause: str


def _markers(text: str) -> list[_Marker]:
    """Each final-answer marker with the clause it introduces, cut where the next marker begins."""
    found = list(_MARKER.finditer(text))
    markers = []
    for i, m in enumerate(found):
        limit = found[i + 1].start() if i + 1 < len(found) else len(text)
        if m.group().startswith("\\"):
            close = _box_end(text, m.end())
            end = min(_with_continuation(text, _sentence_end(text, close)), max(limit, close))
            clause = text[m.end():close - 1] + " " + text[close:end]
        elif m.group() == "####":
            line_end = text.find("\n", m.end())
            end = min(_with_continuation(text, len(text) if line_end < 0 else line_end), limit)
            clause = text[m.end():end]
        else:  # a phrase: its clause is the sentence that follows it, which may begin on the next line
            begin = m.end() + len(text[m.end():]) - len(text[m.end():].lstrip(" \t\n:*"))
            end = min(_with_continuation(text, _sentence_end(text, begin)), limit)
            clause = text[m.end():end]
        markers.append(_Marker(m.start(), clause))
    return markers


def _last_sentence_with_a_number(text: str) -> str:
    ends = [0] + [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]
    spans = [(a, b) for a, b in zip(ends, ends[1:]) if text[a:b].strip()]
    for k in range(len(spans) - 1, -1, -1):
        a, b = spans[k]
        if candidates(text[a:b]):
            while k > 0 and (_CONTINUES.match(text[spans[k][0]:b]) or _OPEN_LIST.search(text[slice(*spans[k - 1])])):
                k -= 1
            return text[spans[k][0]:b]
    return ""


def read_final_answer(output: str) -> Reading:
    """The committed final answer of `output` (see the module docstring). It does not see the reference, so no
    reason it gives can tell the model which value was right."""
    text = normalise(output)
    markers = [(mk, read_clause(mk.clause, True)) for mk in _markers(text)]
    if markers and not markers[-1][1].candidates and not re.search(r"\w", markers[-1][0].clause):
        # "68 + 43 = 111\n\nThe answer is" (cut off): the model had not yet said what it commits to
        reading = Reading(region=markers[-1][0].clause.strip(), kind="unfinished",
                          problem="not committed: the answer ends at a final-answer marker with no value after it")
        return reading
    markers = [(mk, r) for mk, r in markers if r.candidates]
    if not markers:
        return read_clause(_last_sentence_with_a_number(text), False)
    final = markers[-1][1]
    if final.problem:
        return final
    for (mk, earlier), (later, _) in zip(markers, markers[1:]):
        if earlier.kind in ("negated", "question") or RETRACTION.search(text[mk.start:later.start]):
            continue  # it committed to nothing, or it was withdrawn
        if earlier.kind == "hedged" or value_key(earlier.committed or "") != value_key(final.committed or ""):
            final.kind, final.problem = "conflict", "conflicting final answers: an earlier one gives another value"
            final.committed = None
            return final
    return final


def answer_region(output: str) -> str:
    """The text after the last final-answer marker (a box keeps its `\\boxed{`), else the whole output."""
    text = normalise(output)
    last = None
    for last in _MARKER.finditer(text):
        pass
    if last is None:
        return text
    tail = text[last.start() if last.group().startswith("\\") else last.end():].strip()
    return tail or text
