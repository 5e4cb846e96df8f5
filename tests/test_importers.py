import json

import pytest

from hone.errors import HoneError
from hone.importers import gsm8k_gold, import_tasks, last_boxed


def test_gsm8k_import_is_stable_and_strips_commas(shared_data, tmp_path):
    tasks = import_tasks(shared_data / "gsm8k_test_part1.jsonl", "gsm8k")
    assert len(tasks) == 1000 and all(t.kind == "math" for t in tasks)
    assert tasks[0].reference == "18" and tasks[0].meta["category"] == "gsm8k"
    assert len({t.id for t in tasks}) == 1000
    # Reordering the file does not change any id.
    lines = (shared_data / "gsm8k_test_part1.jsonl").read_text().splitlines()
    rev = tmp_path / "rev.jsonl"
    rev.write_text("\n".join(reversed(lines[:50])) + "\n")
    assert {t.id for t in import_tasks(rev, "gsm8k")} == {t.id for t in tasks[:50]}
    assert gsm8k_gold("... #### 1,234") == "1234"


def test_humaneval_import(shared_data):
    tasks = import_tasks(shared_data / "humaneval_part1.jsonl", "humaneval")
    assert len(tasks) == 120 and tasks[0].id == "HumanEval/0"
    t = tasks[0]
    assert t.kind == "code" and t.entry_point == "has_close_elements" and "def check" in t.tests
    assert t.meta["code_prompt"] in t.prompt and t.reference.startswith(t.meta["code_prompt"])


def test_mislabelled_suites_are_refused(shared_data):
    with pytest.raises(HoneError, match=r"gsm8k_test_part1.jsonl:1: this record is not math.*--format gsm8k"):
        import_tasks(shared_data / "gsm8k_test_part1.jsonl", "math")
    with pytest.raises(HoneError, match=r"humaneval_part1.jsonl:1: this record is not gsm8k.*--format humaneval"):
        import_tasks(shared_data / "humaneval_part1.jsonl", "gsm8k")
    with pytest.raises(HoneError, match="not mbpp"):
        import_tasks(shared_data / "humaneval_part1.jsonl", "mbpp")
    with pytest.raises(HoneError, match="unknown format 'csv'"):
        import_tasks(shared_data / "humaneval_part1.jsonl", "csv")


def test_math_and_mbpp_and_generic(tmp_path, shared_data):
    m = tmp_path / "math.jsonl"
    m.write_text(json.dumps({"problem": "Compute $\\frac{1}{2}+\\frac{1}{2}$.", "type": "Algebra", "level": "Level 1",
                             "solution": "It is $\\boxed{\\frac{2}{2}}=\\boxed{1}$."}) + "\n")
    (t,) = import_tasks(m, "math")
    assert t.reference == "1" and t.meta["category"] == "Algebra"
    assert last_boxed(r"so \boxed{\frac{a}{b_{1}}} done") == r"\frac{a}{b_{1}}"
    m.write_text(json.dumps({"question": "q", "answer": "so \\boxed{3}"}) + "\n")
    with pytest.raises(HoneError, match="no `#### N`.*looks like MATH"):
        import_tasks(m, "gsm8k")

    b = tmp_path / "mbpp.jsonl"
    b.write_text(json.dumps({"task_id": 2, "text": "Write a function to add two numbers.",
                             "code": "def add(a, b):\n    return a + b",
                             "test_list": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]}) + "\n")
    (t,) = import_tasks(b, "mbpp")
    assert t.id == "mbpp/2" and t.entry_point == "add" and "assert add(0, 0) == 0" in t.tests

    tasks = import_tasks(shared_data / "mmlu_sample.jsonl", "jsonl", limit=5)
    assert len(tasks) == 5 and tasks[0].kind == "open" and tasks[0].reference.startswith("B.")
    assert tasks[0].meta["category"] == "college_computer_science"


def test_empty_and_invalid_files(tmp_path):
    e = tmp_path / "e.jsonl"
    e.write_text("")
    with pytest.raises(HoneError, match="empty"):
        import_tasks(e, "gsm8k")
    e.write_text('{"question": "q", "answer": "#### 1"}\n[1, 2]\n')
    with pytest.raises(HoneError, match=r"e.jsonl:2: expected a JSON object"):
        import_tasks(e, "gsm8k")
    e.write_text('{"question": "q", "answer": "#### 1"}\n{"question": "q", "answer": "#### 2"}\n')
    with pytest.raises(HoneError, match=r"e.jsonl:2: duplicate item .* as line 1"):
        import_tasks(e, "gsm8k")
