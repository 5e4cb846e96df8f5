"""Grade a code answer by running the task's unit tests on it in the sandbox.

HumanEval tasks (`def check(candidate)` + `entry_point`, meta["code_prompt"] = signature and docstring) and
MBPP-style tasks (plain `assert` lines calling the function by name) are both supported. A model may answer
with a whole function in a ```python block, or with only the body that continues the prompt; both are
turned into a program the same way every time (`extract_program`).
"""

from __future__ import annotations

import re
import textwrap

from hone.grade.sandbox import Limits, run_tests
from hone.evidence import CodeEvidence
from hone.hashing import text_sha256
from hone.records import Generation, Task, Verdict

# 2: candidates run in the bwrap view (docs/sandbox.md) and can no longer read the answers; re-grade older verdicts
CODE_GRADER_VERSION = "2"
CODE_JUDGE = f"verifier:code@{CODE_GRADER_VERSION}"
DEFAULT_LIMITS = Limits()

_FENCE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|\Z)", re.S)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3"}


def test_style(task: Task) -> str:
    """'humaneval' when the tests define check(candidate) for an entry point, else 'asserts'."""
    style = task.meta.get("test_style")
    if style in ("humaneval", "asserts"):
        return style
    return "humaneval" if task.entry_point and re.search(r"^def check\s*\(", task.tests or "", re.M) else "asserts"


def _defines(code: str, name: str | None) -> bool:
    return bool(name) and re.search(rf"^\s*def\s+{re.escape(name)}\s*\(", code, re.M) is not None


def _compiles(code: str) -> bool:
    try:
        compile(code, "<candidate>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def extract_program(task: Task, output: str) -> tuple[str, str]:
    """(program source, how it was obtained) from a model's answer.

    The code is the last ```python block that defines the entry point, else the first code block, else the
    whole answer. For HumanEval tasks the prompt's code (imports, helper functions, the signature) comes
    first: a full function then redefines the entry point, a bare body completes the signature (indented by
    4 spaces if it was not indented and would not compile otherwise).
    """
    blocks = [body for tag, body in _FENCE.findall(output) if tag.lower() in _PYTHON_TAGS]
    entry = task.entry_point
    defining = [b for b in blocks if _defines(b, entry)]
    if defining:
        code, how = defining[-1], "code block defining the function"
    elif blocks:
        code, how = blocks[0], "code block"
    else:
        code, how = output, "whole answer"
    prompt = task.meta.get("code_prompt")
    if test_style(task) != "humaneval" or not prompt:
        return code, how
    if _defines(code, entry):
        return f"{prompt.rstrip()}\n    ...\n\n\n{code}", how + " (after the prompt's code)"
    program = prompt + code
    if not _compiles(program):
        indented = prompt + textwrap.indent(textwrap.dedent(code), "    ")
        if _compiles(indented):
            return indented, how + " as the body of the prompt's function (re-indented)"
    return program, how + " as the body of the prompt's function"


def grade_code(task: Task, generation: Generation, limits: Limits | None = None, sandbox: str = "strict") -> Verdict:
    """Run the task's tests on the answer: pass, fail (wrong, crashed or timed out) or error (not gradable).

    `sandbox` "strict" raises HoneError rather than run the answer without full isolation; "weak" runs it with
    what the machine has. The level and the isolation used are in the verdict's evidence.
    """
    limits = limits or DEFAULT_LIMITS
    base = {"id": generation.id, "sample": generation.sample, "judge": CODE_JUDGE}
    judged = text_sha256(generation.output)
    if generation.finish_reason == "error":
        return Verdict(**base, verdict="error", reason=f"generation failed: {generation.output[:300]}",
                       evidence=CodeEvidence(outcome="error", judged_sha256=judged))
    source, how = extract_program(task, generation.output)
    style = test_style(task)
    result = run_tests(source, task.tests or "", style=style, entry_point=task.entry_point,
                       prompt=task.meta.get("code_prompt") if style == "humaneval" else None, limits=limits,
                       sandbox=sandbox)
    outcome = result.pop("outcome")
    reason = result.pop("reason", outcome)
    verdict = {"pass": "pass", "fail": "fail", "timeout": "fail"}.get(outcome, "error")
    evidence = CodeEvidence(outcome=outcome, extracted=how, program_chars=len(source), style=style, **result,
                            judged_sha256=judged)
    if generation.finish_reason == "length":
        evidence.truncated = True
    return Verdict(**base, verdict=verdict, score={"pass": 1.0, "fail": 0.0}.get(verdict), reason=reason,
                   evidence=evidence)
