"""Suites are checked before use: declared kind against content, duplicates, and training-data overlap."""

from __future__ import annotations

import json

import pytest

from hone.bench.suites import check_suite, claimed_benchmark, contamination, load_suite
from hone.errors import HoneError
from hone.importers import import_tasks
from hone.records import Task, write_records


@pytest.fixture(scope="module")
def gsm8k(shared_data):
    return import_tasks(shared_data / "gsm8k_test_part1.jsonl", "gsm8k", limit=60)


@pytest.fixture(scope="module")
def humaneval(shared_data):
    return import_tasks(shared_data / "humaneval_part1.jsonl", "humaneval")


def _suite(tmp_path, name, tasks):
    write_records(tmp_path / f"{name}.jsonl", tasks)
    return load_suite(str(tmp_path / f"{name}.jsonl"))


def test_the_public_suites_pass_their_checks(tmp_path, gsm8k, humaneval):
    for name, tasks in (("gsm8k_test", gsm8k), ("humaneval", humaneval)):
        suite = _suite(tmp_path, name, tasks)
        check_suite(suite)
        assert suite.warnings == []


def test_suite_names_and_their_claims():
    assert claimed_benchmark("gsm8k_test_part1") == "gsm8k"
    assert claimed_benchmark("MATH-500") == "math" and claimed_benchmark("math500") == "math"
    assert claimed_benchmark("humaneval") == "humaneval" and claimed_benchmark("my-evals") is None
    assert claimed_benchmark("mathematics-homework") is None


def test_gsm8k_called_math_is_refused(tmp_path, gsm8k):
    suite = _suite(tmp_path, "math_test", gsm8k)
    with pytest.raises(HoneError, match=r"math_test.jsonl: suite 'math_test' fails its checks: named math but "
                                        r"looks like GSM8K"):
        check_suite(suite)


def test_math_called_gsm8k_is_refused(tmp_path):
    tasks = [Task(id=f"m{i}", kind="math", prompt=f"Compute $\\frac{{{i}}}{{7}}$.", reference=f"\\frac{{{i}}}{{7}}")
             for i in range(1, 6)]
    with pytest.raises(HoneError, match="named gsm8k but 5 of 5 references are not plain numbers"):
        check_suite(_suite(tmp_path, "gsm8k", tasks))
    check_suite(_suite(tmp_path, "math", tasks))  # the right name is fine


def test_content_that_contradicts_its_declared_kind_is_refused(tmp_path):
    prose = Task(id="p", kind="math", prompt="Why?", reference="Because the train leaves earlier than the bus does")
    with pytest.raises(HoneError, match="task 'p': declared math but its reference is prose"):
        check_suite(_suite(tmp_path, "s1", [prose]))
    open_with_tests = Task(id="o", kind="open", prompt="Write f.", tests="assert f() == 1")
    with pytest.raises(HoneError, match="declared open but has unit tests"):
        check_suite(_suite(tmp_path, "s2", [open_with_tests]))
    mbpp_as_humaneval = Task(id="c", kind="code", prompt="add", tests="assert add(1, 2) == 3",
                             meta={"test_style": "asserts"})
    with pytest.raises(HoneError, match="named humaneval but 1 tasks use other tests"):
        check_suite(_suite(tmp_path, "humaneval_x", [mbpp_as_humaneval]))


def test_an_open_task_with_a_numeric_reference_is_a_warning(tmp_path):
    suite = _suite(tmp_path, "mixed", [Task(id="o", kind="open", prompt="How many legs has a spider?",
                                            reference="8")])
    check_suite(suite)
    assert suite.warnings == ["task 'o': declared open but its reference is a number: declare it math so a "
                              "verifier grades it"]


def test_duplicate_prompts_are_refused_with_their_ids(tmp_path):
    tasks = [Task(id="a", kind="math", prompt="What is 2 + 2?", reference="4"),
             Task(id="b", kind="math", prompt="what is 2  +  2?", reference="4"),
             Task(id="c", kind="math", prompt="What is 3 + 3?", reference="6")]
    with pytest.raises(HoneError, match="duplicate prompts: 'a', 'b'"):
        check_suite(_suite(tmp_path, "dups", tasks))


def test_named_suites_and_bad_names(tmp_path, gsm8k):
    write_records(tmp_path / "x.jsonl", gsm8k[:3])
    assert load_suite(f"arith={tmp_path / 'x.jsonl'}").name == "arith"
    with pytest.raises(HoneError, match="suite name"):
        load_suite(f"bad name={tmp_path / 'x.jsonl'}")


def test_contamination_finds_the_copied_items_and_only_those(tmp_path, gsm8k, humaneval):
    suites = [_suite(tmp_path, "gsm8k", gsm8k), _suite(tmp_path, "humaneval", humaneval[:30])]
    copied = [gsm8k[3], gsm8k[17], gsm8k[42]]
    half = gsm8k[8].prompt.split()
    rows = [{"id": f"sft-{i}", "messages": [{"role": "user", "content": t.prompt},
                                            {"role": "assistant", "content": "The answer is 1."}]}
            for i, t in enumerate(copied)]
    rows.append({"id": "half", "messages": [{"role": "user", "content": " ".join(half[: len(half) // 3])}]})
    # The instruction every HumanEval prompt shares is template text, not contamination.
    rows.append({"prompt": humaneval[0].prompt.split("```")[0], "response": "ok"})
    rows.append({"prompt": humaneval[5].meta["code_prompt"], "response": "def f(): pass"})
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = contamination(suites, [train])
    g = report["suites"]["gsm8k"]
    assert sorted(x["id"] for x in g["contaminated"]) == sorted(t.id for t in copied)
    assert all(x["overlap"] == 1.0 for x in g["contaminated"])
    assert [x["id"] for x in g["overlapping"]] == [gsm8k[8].id]
    h = report["suites"]["humaneval"]
    assert [x["id"] for x in h["contaminated"]] == [humaneval[5].id] and h["overlapping"] == []


def test_short_prompts_match_only_as_a_whole(tmp_path):
    tasks = [Task(id="a", kind="math", prompt="What is 12 + 34?", reference="46"),
             Task(id="b", kind="math", prompt="What is 12 + 35?", reference="47")]
    train = tmp_path / "train.txt"
    train.write_text("Q: what is 12 + 34? A: 46\nQ: what is 12 + 3? A: 15\n")
    report = contamination([_suite(tmp_path, "arith", tasks)], [train])
    assert [x["id"] for x in report["suites"]["arith"]["contaminated"]] == ["a"]


def test_a_missing_or_broken_training_file_is_a_clear_error(tmp_path, gsm8k):
    suite = _suite(tmp_path, "gsm8k", gsm8k[:2])
    with pytest.raises(HoneError, match="no such training file"):
        contamination([suite], [tmp_path / "nope.jsonl"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(HoneError, match="bad.jsonl:2: not valid JSON"):
        contamination([suite], [bad])
