import json


import pytest

from hone.errors import HoneError
from hone.records import Generation, PartialJsonl, SFTExample, Task, Verdict, read_records, read_tasks, write_records


def test_roundtrip_and_atomic_write(tmp_path):
    tasks = [Task(id="a", kind="math", prompt="1+1?", reference="2"),
             Task(id="b", kind="open", messages=[{"role": "user", "content": "hi"}])]
    out = tmp_path / "t.jsonl"
    assert write_records(out, tasks) == 2
    assert read_tasks(out) == tasks
    assert [p.name for p in tmp_path.iterdir()] == ["t.jsonl"]  # no temp file left behind


def test_invalid_line_names_file_and_line(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps({"id": "a", "kind": "math", "prompt": "x", "reference": "1"}) + "\n"
                 + "\n" + json.dumps({"id": "b", "kind": "poetry", "prompt": "x"}) + "\n")
    with pytest.raises(HoneError, match=rf"{p}:3: kind: Input should be"):
        read_tasks(p)
    p.write_text('{"id": "a", "kind": "math",\n')
    with pytest.raises(HoneError, match=rf"{p}:1: not valid JSON"):
        read_tasks(p)


@pytest.mark.parametrize("obj, message", [
    ({"id": "a", "kind": "math", "prompt": "x"}, "needs a `reference`"),
    ({"id": "a", "kind": "code", "prompt": "x"}, "needs `tests`"),
    ({"id": "a", "kind": "open"}, "exactly one of `prompt` or `messages`"),
    ({"id": "a", "kind": "open", "prompt": "x", "extra": 1}, "extra: Extra inputs are not permitted"),
])
def test_task_validation(tmp_path, obj, message):
    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps(obj) + "\n")
    with pytest.raises(HoneError, match=message):
        read_tasks(p)


def test_empty_file_and_duplicate_ids(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text("\n")
    with pytest.raises(HoneError, match="no records"):
        read_tasks(p)
    row = json.dumps({"id": "a", "kind": "open", "prompt": "x"})
    p.write_text(row + "\n" + row + "\n")
    with pytest.raises(HoneError, match="duplicate task id 'a'"):
        read_tasks(p)
    with pytest.raises(HoneError, match="no such file"):
        read_tasks(tmp_path / "missing.jsonl")


def test_sft_example_must_end_with_assistant():
    with pytest.raises(ValueError):
        SFTExample(id="x", messages=[{"role": "user", "content": "q"}], source="sample")


def test_partial_jsonl_resumes_and_drops_torn_line(tmp_path):
    out = tmp_path / "v.jsonl"
    sink = PartialJsonl(out, Verdict, key=lambda v: (v.id, v.sample))
    sink.append(Verdict(id="a", judge="j", verdict="pass"))
    sink.append(Verdict(id="b", judge="j", verdict="fail"))
    sink.close()
    with open(sink.partial, "a") as f:
        f.write('{"id": "c", "judge": "j", "verd')  # killed mid-write
    assert not out.exists()  # an unfinished stage never looks complete

    again = PartialJsonl(out, Verdict, key=lambda v: (v.id, v.sample))
    assert again.done == {("a", 0), ("b", 0)}
    again.append(Verdict(id="c", judge="j", verdict="error", reason="timeout"))
    records = again.finish(order=lambda v: v.id)
    assert [v.id for v in records] == ["a", "b", "c"]
    assert [v.id for v in read_records(out, Verdict)] == ["a", "b", "c"]
    assert not sink.partial.exists()


def test_generation_finish_reason_is_checked():
    with pytest.raises(ValueError):
        Generation(id="a", model="m", output="", finish_reason="maybe")


def test_unfinished_records_are_written_but_the_stage_stays_resumable(tmp_path):
    out = tmp_path / "v.jsonl"
    sink = PartialJsonl(out, Verdict, key=lambda v: (v.id, v.sample))
    sink.append(Verdict(id="b", judge="j", verdict="pass"))
    retry = Verdict(id="a", judge="j", verdict="error", reason="429")
    assert [v.id for v in sink.finish(order=lambda v: v.id, unfinished=[retry])] == ["a", "b"]
    assert [v.id for v in read_records(out, Verdict)] == ["a", "b"]
    again = PartialJsonl(out, Verdict, key=lambda v: (v.id, v.sample))
    assert again.done == {("b", 0)}  # the error is redone on the next run, the pass is not
    again.close()
