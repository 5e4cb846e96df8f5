"""Grade a math answer against its reference: one committed final answer, compared with math-verify.

hone.grade.final_answer reads which one value the answer commits to (after the last `####`, `\\boxed{}`, "the
answer is" / "answer:" / "final answer", else in the last sentence with a number) and fails a hedge, a negation,
a question or disagreeing final answers with a reason that names it. math-verify parses that value and compares
it with the reference symbolically and numerically. A value is a number as written (`15`, `15.0`, `$15`,
`6,277`, `25%`, `3 \\cdot 10^5`), a fraction of two integers in lowest terms (`3/4`), a LaTeX `\\frac` of two
integer literals (`\\frac{45}{3}`: LaTeX typesets a rational, and math-verify evaluates it), or an irrational
expression (`1 + 2\\sqrt{3}`); any other arithmetic on numbers (`(30 - 2)/2`, `2 + 2/2`, `15/1`, `30/2`, `3*5`,
`2^4`, `\\sqrt{225}`, `\\frac{11 + 6 - 2}{1}`) is an unevaluated expression, not a value. A reference that is not
one number (a set, a tuple, an expression in variables) is compared with what math-verify reads after the last
marker. An answer that states no value fails with that reason; a reference that cannot be parsed is an error
(not the model's fault).

math-verify's own timeouts use SIGALRM, which only works in a process's main thread: `grade_math` uses them
there and nowhere else. `hone.grade.verify` sends calls from other threads to a worker process.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import re
import threading
import time
from typing import Any

from hone.evidence import MathEvidence
from hone.grade.final_answer import answer_region, read_final_answer
from hone.hashing import text_sha256
from hone.records import Generation, Task, Verdict

# 2: a reference with the GSM8K `####` marker is read there; 3: an unevaluated sum or product of numbers
# ("... we compute 63 + 45.") is not an answer, even when its value equals the reference; 4: one committed final
# answer (hone.grade.final_answer: hedges, negations, questions and disagreeing final answers fail), and any
# arithmetic left unevaluated (division and powers too, `(30 - 2)/2`, `15/1`) is not a value; 5: an answer cut off
# at its final-answer marker (`... The answer is`) is not committed, `15 ≠ ...` negates the value before it, an
# example out of several (`from 1 to 100 include 15`, `e.g. 15`) is a hedge and `15 give or take` a bound
MATH_GRADER_VERSION = "5"
MATH_JUDGE = f"verifier:math@{MATH_GRADER_VERSION}"
TIMEOUT_S = 5

logging.getLogger("math_verify").setLevel(logging.ERROR)


@functools.lru_cache(maxsize=1)
def _library_version() -> str:
    return importlib.metadata.version("math-verify")


def _timeout() -> int | None:
    return TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def _parse(text: str) -> list[Any]:
    from math_verify import parse

    t = _timeout()
    return parse(text, parsing_timeout=t)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=4096)
def parse_reference(reference: str) -> tuple[Any, ...]:
    """The reference as math-verify objects; plain references are read as LaTeX math. A GSM8K worked solution
    (as the GSM8K files ship it) is read at its `#### N` marker, thousands separators dropped."""
    text = reference.strip()
    if "####" in text:
        text = text.rsplit("####", 1)[1].strip().replace(",", "")
    if "$" not in text and "\\boxed" not in text and "\\(" not in text:
        text = f"${text}$"
    return tuple(_parse(text))


def _is_number(expr: Any) -> bool:
    """True for a reference that is one number (`18`, `\\frac{3}{4}`, `25\\%`, `\\sqrt{2}/2`): the kind whose
    answer must commit to one value. Sets, tuples, intervals and expressions in variables are read as math-verify
    reads them."""
    import sympy

    return isinstance(expr, sympy.Expr) and not expr.free_symbols and not isinstance(expr, sympy.Tuple)


_TO_PLAIN = [(re.compile(p), r) for p, r in ((r"(?<=\d)[, \u00a0\u202f](?=\d{3})", ""), (r"\$", ""),
                                             (r"\\cdot|\\times|×|·", "*"), (r"\\div|÷", "/"), (r"[−–]", "-"),
                                             (r"\*\*", "^"))]


_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _parse_value(text: str) -> list[Any]:
    """The committed value as math-verify objects: plain text as an expression (so `30/2` stays a division),
    LaTeX (`\\frac`, `\\sqrt`, `\\pi`) as math."""
    for pattern, repl in _TO_PLAIN:
        text = pattern.sub(repl, text)
    text = text.replace("π", "\\pi ").replace("√", "\\sqrt")
    if _PLAIN_NUMBER.fullmatch(text):  # what math-verify makes of it, without its parser (most answers)
        import sympy

        return [sympy.Float(text) if "." in text else sympy.Integer(text), text]
    if "\\" in text or "{" in text:
        return _parse(f"${text.replace('%', chr(92) + '%')}$")
    return _parse(text)


def unevaluated_arithmetic(expr: Any) -> bool:
    """True for arithmetic on numbers that math-verify kept unevaluated (`63 + 45`, `(30 - 2)/2`, `15/1`, `2^4`):
    a model that restates the question's expression has not answered it. A number, a fraction of two integers
    in lowest terms (`3/4`), scientific notation (`3 \\cdot 10^5`), a percentage and an irrational expression
    (`2\\sqrt{3} + 1`) are values."""
    import sympy

    if not isinstance(expr, (sympy.Add, sympy.Mul, sympy.Pow)):
        return False
    if not all(isinstance(node, (sympy.Add, sympy.Mul, sympy.Pow, sympy.Number))
               for node in sympy.preorder_traversal(expr)):
        return False  # symbols, pi, a percentage
    if expr.is_rational is False:
        return False  # a radical: its simplest form is not judged here
    return not (_lowest_terms_fraction(expr) or _scientific(expr))


def _lowest_terms_fraction(expr: Any) -> bool:
    import sympy

    if not isinstance(expr, sympy.Mul):
        return False
    inverses = [a for a in expr.args if isinstance(a, sympy.Pow) and a.exp == -1 and isinstance(a.base, sympy.Integer)]
    integers = [a for a in expr.args if isinstance(a, sympy.Integer)]
    if len(inverses) != 1 or len(integers) + 1 != len(expr.args):
        return False
    numerator, denominator = sympy.Mul(*integers), inverses[0].base
    return denominator > 1 and sympy.gcd(numerator, denominator) == 1


def _scientific(expr: Any) -> bool:
    """a · 10^k with 1 <= |a| < 10: how a value is written in scientific notation (`3 \\cdot 10^5`)."""
    import sympy

    if not (isinstance(expr, sympy.Mul) and len(expr.args) == 2):
        return False
    powers = [a for a in expr.args if isinstance(a, sympy.Pow) and a.base == 10 and isinstance(a.exp, sympy.Integer)]
    mantissas = [a for a in expr.args if isinstance(a, sympy.Number) and 1 <= abs(a) < 10]
    return len(powers) == 1 and len(mantissas) == 1


def _shown(parsed: list[Any]) -> str:
    return str(parsed[-1]) if parsed else ""


def grade_math(task: Task, generation: Generation) -> Verdict:
    """pass when the extracted final answer equals the reference; see the module docstring for the rest."""
    from math_verify import verify

    base = {"id": generation.id, "sample": generation.sample, "judge": MATH_JUDGE}
    evidence = MathEvidence(gold=task.reference, method=f"math-verify {_library_version()}",
                            judged_sha256=text_sha256(generation.output))
    if generation.finish_reason == "error":
        return Verdict(**base, verdict="error", reason=f"generation failed: {generation.output[:300]}",
                       evidence=evidence)
    t0 = time.perf_counter()
    gold = list(parse_reference(task.reference or ""))
    if not gold:
        return Verdict(**base, verdict="error", reason=f"the reference answer {task.reference!r} cannot be parsed",
                       evidence=evidence)
    if generation.finish_reason == "length":
        evidence.truncated = True

    def fail(reason: str) -> Verdict:
        evidence.seconds = round(time.perf_counter() - t0, 4)
        return Verdict(**base, verdict="fail", score=0.0, reason=reason, evidence=evidence)

    reading = read_final_answer(generation.output) if _is_number(gold[0]) else None
    if reading and reading.problem:
        evidence.region = reading.region[:300]
        return fail(reading.problem)
    if reading and reading.committed:
        predicted = _parse_value(reading.committed)
    else:  # a reference that is not one number, or an answer with no number in it (`\\infty`): as math-verify reads it
        predicted = _parse(answer_region(generation.output))
    evidence.extracted = _shown(predicted)
    if not predicted:
        return fail("no final answer could be extracted")
    if unevaluated_arithmetic(predicted[0]):
        return fail(f"the final answer {_shown(predicted)} is an unevaluated expression, not a value")
    ok = verify(gold, predicted, timeout_seconds=_timeout())
    evidence.seconds = round(time.perf_counter() - t0, 4)
    relation = "equals" if ok else "does not equal"
    reason = f"answer {_shown(predicted)} {relation} the reference {task.reference}"
    if not ok and reading and any(c.negated for c in reading.candidates):  # which value it ruled out is not said
        reason = f"negated: the final answer rules out another value, and its {reason}"
    return Verdict(**base, verdict="pass" if ok else "fail", score=1.0 if ok else 0.0, reason=reason,
                   evidence=evidence)


def grade_math_batch(pairs: list[tuple[Task, Generation]]) -> list[Verdict]:
    """Grade several answers in one call (what a worker process runs, in its main thread)."""
    return [grade_math(t, g) for t, g in pairs]
