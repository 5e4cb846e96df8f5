"""Grade a math answer against its reference with Hugging Face math-verify.

math-verify extracts the final answer (\\boxed{}, "the answer is", LaTeX, plain numbers with thousands
separators, currency, units, percentages) and compares it symbolically and numerically. On top of it, the GSM8K
convention `#### N` marks the final answer when a model uses it. A wrong value is a fail; an answer that
cannot be extracted is a fail with that reason; a reference that cannot be parsed is an error (not the
model's fault).

math-verify's own timeouts use SIGALRM, which only works in a process's main thread: `grade_math` uses them
there and nowhere else. `hone.grade.verify` sends calls from other threads to a worker process.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import threading
import time
from typing import Any

from hone.evidence import MathEvidence
from hone.hashing import text_sha256
from hone.records import Generation, Task, Verdict

# 2: a reference with the GSM8K `####` marker is read there; 3: an unevaluated sum or product of numbers
# ("... we compute 63 + 45.") is not an answer, even when its value equals the reference
MATH_GRADER_VERSION = "3"
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


def answer_region(output: str) -> str:
    """The part of an answer that holds the final result: after the last `####` when the GSM8K marker is used."""
    if "####" in output:
        tail = output.rsplit("####", 1)[1].strip()
        if tail:
            return tail
    return output


def unevaluated_arithmetic(expr: Any) -> bool:
    """True for a sum or product of literal numbers that math-verify kept unevaluated (`63 + 45`, `76 - 24`):
    a model that restates the question's expression has not answered it. `2\\sqrt{3} + 1`, `3/4`, `-5` are
    values, not flagged."""
    import sympy

    if not isinstance(expr, (sympy.Add, sympy.Mul)):
        return False
    return all(isinstance(node, (sympy.Add, sympy.Mul, sympy.Number)) for node in sympy.preorder_traversal(expr))


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
    predicted = _parse(answer_region(generation.output))
    evidence.extracted = _shown(predicted)
    if generation.finish_reason == "length":
        evidence.truncated = True
    if not predicted:
        evidence.seconds = round(time.perf_counter() - t0, 4)
        return Verdict(**base, verdict="fail", score=0.0, reason="no final answer could be extracted",
                       evidence=evidence)
    if unevaluated_arithmetic(predicted[0]):
        evidence.seconds = round(time.perf_counter() - t0, 4)
        return Verdict(**base, verdict="fail", score=0.0, evidence=evidence,
                       reason=f"the final answer {_shown(predicted)} is an unevaluated expression, not a value")
    ok = verify(gold, predicted, timeout_seconds=_timeout())
    evidence.seconds = round(time.perf_counter() - t0, 4)
    relation = "equals" if ok else "does not equal"
    return Verdict(**base, verdict="pass" if ok else "fail", score=1.0 if ok else 0.0,
                   reason=f"answer {_shown(predicted)} {relation} the reference {task.reference}", evidence=evidence)


def grade_math_batch(pairs: list[tuple[Task, Generation]]) -> list[Verdict]:
    """Grade several answers in one call (what a worker process runs, in its main thread)."""
    return [grade_math(t, g) for t, g in pairs]
