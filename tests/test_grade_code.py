"""Code grading on real HumanEval data: every canonical solution passes, every deliberately bugged one fails."""

from __future__ import annotations

import json
import os

import pytest

from hone.grade import verify, verify_many
from hone.grade.code import CODE_JUDGE, extract_program
from hone.importers import import_tasks
from hone.records import Generation, Task

# Appended after a canonical solution: the same function, but every result is off by a little.
BUG = '''

_original_{entry} = {entry}


def _perturb(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "!"
    if isinstance(value, list):
        return value + [value[-1] if value else 0]
    if isinstance(value, tuple):
        return value + (0,)
    return 0


def {entry}(*args, **kwargs):
    return _perturb(_original_{entry}(*args, **kwargs))
'''


@pytest.fixture(scope="module")
def humaneval(shared_data):
    path = shared_data / "humaneval_part1.jsonl"
    raw = {json.loads(line)["task_id"]: json.loads(line) for line in path.read_text().splitlines() if line.strip()}
    return import_tasks(path, "humaneval"), raw


def _answer(i: int, prompt: str, solution: str) -> str:
    """The canonical solution in the three shapes models answer in: bare body, fenced function, unfenced function."""
    if i % 3 == 0:
        return solution
    if i % 3 == 1:
        return f"Here is the function:\n```python\n{prompt}{solution}```\nIt handles the edge cases."
    return prompt + solution


@pytest.fixture(scope="module")
def graded(humaneval):
    tasks, raw = humaneval
    items = []
    for i, t in enumerate(tasks):
        r = raw[t.id]
        good = _answer(i, r["prompt"], r["canonical_solution"])
        bad = f"```python\n{r['prompt']}{r['canonical_solution']}{BUG.format(entry=r['entry_point'])}```"
        items.append((t, Generation(id=t.id, sample=0, model="canonical", output=good, finish_reason="stop")))
        items.append((t, Generation(id=t.id, sample=1, model="bugged", output=bad, finish_reason="stop")))
    return items, verify_many(items, workers=os.cpu_count())


def test_all_120_canonical_solutions_pass(graded):
    items, verdicts = graded
    canonical = [v for (t, g), v in zip(items, verdicts) if g.sample == 0]
    assert len(canonical) == 120
    failed = [(v.id, v.reason) for v in canonical if v.verdict != "pass"]
    assert not failed, failed[:5]
    assert all(v.judge == CODE_JUDGE and v.evidence["calls"] > 0 for v in canonical)


def test_every_bugged_solution_fails(graded):
    items, verdicts = graded
    bugged = [v for (t, g), v in zip(items, verdicts) if g.sample == 1]
    assert len(bugged) == 120
    passed = [v.id for v in bugged if v.verdict != "fail"]
    assert not passed, passed[:5]
    assert all(v.evidence["outcome"] == "fail" and v.reason for v in bugged)


def test_evidence_names_the_failed_assertion(graded):
    items, verdicts = graded
    v = next(v for (t, g), v in zip(items, verdicts) if g.sample == 1 and t.id == "HumanEval/0")
    assert v.reason.startswith("assertion failed at tests line")
    assert "candidate(" in v.reason
    assert v.evidence["isolation"] and v.evidence["seconds"] > 0


def _task(**kw) -> Task:
    base = dict(id="t", kind="code", prompt="p", tests="assert add(1, 2) == 3\n", meta={"test_style": "asserts"})
    base.update(kw)
    return Task(**base)


def _gen(output: str, task_id: str = "t") -> Generation:
    return Generation(id=task_id, model="m", output=output, finish_reason="stop")


def test_mbpp_style_asserts_call_the_function_by_name():
    task = _task()
    assert verify(task, _gen("```python\ndef add(a, b):\n    return a + b\n```")).verdict == "pass"
    wrong = verify(task, _gen("```python\ndef add(a, b):\n    return a - b\n```"))
    assert wrong.verdict == "fail" and "assert add(1, 2) == 3" in wrong.reason


def test_mbpp_tests_see_the_stdlib_modules_the_candidate_imported():
    task = _task(tests="assert math.isclose(area(2.0), 12.566370614359172)\n")
    code = "```python\nimport math\ndef area(r):\n    return math.pi * r * r\n```"
    assert verify(task, _gen(code)).verdict == "pass"


def test_extraction_prefers_the_block_that_defines_the_entry_point():
    prompt = "def inc(x):\n    \"\"\"Add one.\"\"\"\n"
    task = Task(id="t", kind="code", prompt="p", tests="def check(candidate):\n    assert candidate(1) == 2\n",
                entry_point="inc", meta={"code_prompt": prompt, "test_style": "humaneval"})
    answer = "Usage:\n```python\nprint(inc(1))\n```\nSolution:\n```python\ndef inc(x):\n    return x + 1\n```"
    source, how = extract_program(task, answer)
    assert "return x + 1" in source and "print(inc(1))" not in source and "defining" in how
    assert verify(task, _gen(answer)).verdict == "pass"
    # An unindented body is re-indented under the prompt's signature.
    source, how = extract_program(task, "return x + 1")
    assert "re-indented" in how and verify(task, _gen("return x + 1")).verdict == "pass"


def test_answers_that_do_not_compile_or_define_nothing_fail():
    task = _task()
    bad = verify(task, _gen("```python\ndef add(a, b)\n    return a + b\n```"))
    assert bad.verdict == "fail" and "does not load: SyntaxError" in bad.reason
    prose = verify(task, _gen("I would add the two numbers."))
    assert prose.verdict == "fail"


def test_a_failed_generation_is_an_error_not_a_fail():
    v = verify(_task(), Generation(id="t", model="m", output="HTTP 500", finish_reason="error"))
    assert v.verdict == "error" and "generation failed" in v.reason


def test_candidate_exceptions_keep_their_builtin_type_for_the_tests():
    tests = ("try:\n    parse('x')\n    raise AssertionError('no error')\nexcept ValueError:\n    pass\n"
             "assert parse('3') == 3\n")
    task = _task(tests=tests)
    assert verify(task, _gen("```python\ndef parse(s):\n    return int(s)\n```")).verdict == "pass"
