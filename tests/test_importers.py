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


def _cli(*args: str) -> "subprocess.CompletedProcess[str]":
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "hone.cli", *args], capture_output=True, text=True)


def test_parquet_csv_json_and_datasets_folders_give_the_jsonl_tasks(shared_data, tmp_path):
    """The same rows in every container, with the user's own column names, make byte-identical Task files."""
    import datasets

    from hone.importers import import_to

    gsm = tmp_path / "gsm8k.jsonl"
    gsm.write_text("".join((shared_data / "gsm8k_test_part1.jsonl").read_text().splitlines(True)[:60]))
    mmlu = tmp_path / "mmlu.jsonl"
    lines = (shared_data / "mmlu_sample.jsonl").read_text().splitlines(True)
    mmlu.write_text("".join([line for line in lines if json.loads(line)["metadata"]["source"] == "MMLU"][:60]))
    import_to(gsm, "gsm8k", tmp_path / "gsm8k.tasks.jsonl")
    import_to(mmlu, "mmlu", tmp_path / "mmlu.tasks.jsonl")
    expected = {"gsm8k": (tmp_path / "gsm8k.tasks.jsonl").read_bytes(),
                "mmlu": (tmp_path / "mmlu.tasks.jsonl").read_bytes()}

    g = datasets.Dataset.from_json(str(gsm)).rename_columns({"question": "q", "answer": "worked_answer"})
    g.to_parquet(str(tmp_path / "gsm8k.parquet"))
    g.to_csv(str(tmp_path / "gsm8k.csv"), index=False)
    g.save_to_disk(str(tmp_path / "gsm8k"))
    (tmp_path / "gsm8k.json").write_text(json.dumps(g.to_list()))
    gsm_fields = ["--field", "question=q", "--field", "answer=worked_answer"]

    m = datasets.Dataset.from_json(str(mmlu))
    m.rename_column("prompt", "input").to_parquet(str(tmp_path / "mmlu.parquet"))
    m.save_to_disk(str(tmp_path / "mmlu"))
    flat = m.map(lambda r: {"idx": r["metadata"]["answer_index"], "subj": r["metadata"]["subject"]},
                 remove_columns=["metadata"]).rename_columns({"prompt": "text", "response": "gold"})
    flat.to_csv(str(tmp_path / "mmlu.csv"), index=False)

    cases = [("gsm8k.parquet", "gsm8k", gsm_fields), ("gsm8k.csv", "gsm8k", gsm_fields),
             ("gsm8k.json", "gsm8k", gsm_fields), ("gsm8k", "gsm8k", gsm_fields),
             ("mmlu.parquet", "mmlu", ["--field", "prompt=input"]), ("mmlu", "mmlu", []),
             ("mmlu.csv", "mmlu", ["--field", "prompt=text", "--field", "response=gold",
                                   "--field", "answer_index=idx", "--field", "metadata.subject=subj"])]
    for src, fmt, fields in cases:
        out = tmp_path / f"out-{src}.jsonl"
        run = _cli("tasks", "import", str(tmp_path / src), "-f", fmt, "-o", str(out), *fields)
        assert run.returncode == 0, run.stderr
        assert out.read_bytes() == expected[fmt], src


def test_bad_mapping_names_the_column_and_the_columns_that_exist(tmp_path):
    import datasets

    datasets.Dataset.from_list([{"q": "1+1?", "a": "#### 2"}]).to_parquet(str(tmp_path / "d.parquet"))
    run = _cli("tasks", "import", str(tmp_path / "d.parquet"), "-f", "gsm8k", "--dry-run",
               "--field", "question=query", "--field", "answer=a")
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert "no column `query` for --field question=query (columns: a, q)" in run.stderr
    ok = _cli("tasks", "import", str(tmp_path / "d.parquet"), "-f", "gsm8k", "--dry-run",
              "--field", "question=q", "--field", "answer=a")
    assert ok.returncode == 0 and '"prompt":"1+1?"' in ok.stdout.replace(" ", "") and "1 tasks would" in ok.stdout
    assert not list(tmp_path.glob("*.jsonl"))
    helptext = _cli("tasks", "import", "--help").stdout
    assert all(fmt in helptext for fmt in ("gsm8k", "math", "humaneval", "mbpp", "mmlu", "jsonl"))
