"""Multiple choice: the `choice` task kind, the MMLU importer, the letter verifier, log-likelihood scoring."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from hone.bench.loglik import LoglikChoiceGenerator, option_logprobs
from hone.bench.suites import label_problems
from hone.errors import HoneError
from hone.grade import verify, verify_many
from hone.grade.choice import extract_choice
from hone.importers import import_tasks
from hone.records import Generation, Task, read_tasks, write_records

HONE = [sys.executable, "-m", "hone.cli"]
OPTIONS = ["Finding a longest simple cycle in G", "Finding a shortest cycle in G",
           "Finding ALL spanning trees of G", "Finding a largest clique in G"]


def _task(**kw) -> Task:
    return Task(**{"id": "q1", "kind": "choice", "prompt": "Which one?", "options": OPTIONS, "reference": "B", **kw})


def test_choice_tasks_are_validated():
    assert _task().reference == "B"
    for bad, message in (({"options": ["only one"]}, "2 to 26"), ({"reference": "E"}, "one letter of ABCD"),
                         ({"reference": "b"}, "one letter"), ({"options": ["x", " "]}, "must not be empty")):
        with pytest.raises(ValueError, match=message):
            _task(**bad)
    with pytest.raises(ValueError, match="belong to choice tasks"):
        Task(id="m", kind="math", prompt="1+1?", reference="2", options=["1", "2"])


@pytest.mark.parametrize("answer, letter", [
    ("B", "B"), ("B. Finding a shortest cycle in G", "B"), ("(C)", "C"), ("The answer is (D).", "D"),
    ("**Answer:** B", "B"), ("I pick option C because it is polynomial.", "C"),
    ("Finding a shortest cycle in G, by BFS from every vertex.", "B"),
    ("The correct answer is B, or rather... Final answer: C", "C"),  # the final answer counts
    ("The answer is a bit subtle: finding a largest clique in G.", "D"),  # 'a' is no letter
    ("A shortest cycle can be found quickly.", None),  # the article, and no option's full text
    ("Finding a longest simple cycle in G or finding a largest clique in G", None),  # two options named
    ("E", None),  # not an option of this task
])
def test_the_chosen_option_is_read_by_rules(answer, letter):
    assert extract_choice(answer, OPTIONS)[0] == letter


def test_choice_answers_are_graded_by_the_verifier_not_a_judge():
    task = _task()
    gens = [Generation(id="q1", sample=i, model="m", output=o, finish_reason="stop")
            for i, o in enumerate(["B. Finding a shortest cycle in G", "The answer is A", "I don't know"])]
    gens.append(Generation(id="q1", sample=3, model="m", output="boom", finish_reason="error"))
    verdicts = verify_many([(task, g) for g in gens])
    assert [v.verdict for v in verdicts] == ["pass", "fail", "fail", "error"]
    assert verdicts[0].judge.startswith("verifier:choice") and verdicts[2].reason == "no option could be extracted"
    assert verify(task, gens[0]).evidence["method"] == "leading letter"


def test_mmlu_sample_imports_its_mmlu_rows_and_says_what_it_skipped(shared_data, tmp_path):
    out = tmp_path / "mmlu.jsonl"
    done = subprocess.run([*HONE, "tasks", "import", str(shared_data / "mmlu_sample.jsonl"), "--format", "mmlu",
                           "-o", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "wrote 100 tasks" in done.stdout and "choice: 100" in done.stdout
    assert "skipped 400 records" in done.stderr and "GPQA 100" in done.stderr
    tasks = read_tasks(out)
    first = tasks[0]
    assert first.options == OPTIONS and first.reference == "B"
    assert first.meta["category"] == "college_computer_science"
    assert first.prompt.endswith("Answer:") and "D. Finding a largest clique in G" in first.prompt
    assert {t.reference for t in tasks} == set("ABCD")
    assert label_problems("mmlu", tasks) == []
    assert label_problems("mmlu", [Task(id="x", kind="math", prompt="1+1?", reference="2")])


def _sample_row(shared_data) -> dict:
    return json.loads((shared_data / "mmlu_sample.jsonl").read_text().splitlines()[0])


@pytest.mark.parametrize("path, value, message", [
    (("metadata", "answer_index"), "1", "field `metadata.answer_index` must be an integer, got str"),
    (("metadata", "answer_index"), True, "field `metadata.answer_index` must be an integer, got bool"),
    (("prompt",), 42, "field `prompt` must be a string, got int"),
    (("metadata", "subject"), ["law"], "field `metadata.subject` must be a string, got list"),
    (("response",), "C. Finding ALL spanning trees of G", "is not option B"),
    (("metadata", "answer_index"), 7, "answer index 7 is outside the 4 options"),
])
def test_mmlu_fields_are_type_checked_with_file_line_and_field(shared_data, tmp_path, path, value, message):
    row = _sample_row(shared_data)
    target = row
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    src = tmp_path / "mmlu.jsonl"
    src.write_text(json.dumps(_sample_row(shared_data) | {"prompt": "x\n\nA. a\nB. b\n\nAnswer:",
                                                          "response": "B. b"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(HoneError, match=f"^{src}:2: .*{message}"):
        import_tasks(src, "mmlu")


def test_mmlu_in_the_hugging_face_layout(tmp_path):
    src = tmp_path / "hf.jsonl"
    rows = [{"question": "2 + 2 = ?", "choices": ["3", "4", "5", "22"], "answer": 1, "subject": "arithmetic"},
            {"question": "Capital of France?", "choices": ["Paris", "Rome"], "answer": "0"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(HoneError, match=f"{src}:2: field `answer` must be an integer, got str"):
        import_tasks(src, "mmlu")
    task = import_tasks(src, "mmlu", limit=1)[0]
    assert task.kind == "choice" and task.reference == "B" and task.options == ["3", "4", "5", "22"]
    assert "about arithmetic" in task.prompt and "\nB. 4\n" in task.prompt and task.prompt.endswith("Answer:")
    other = tmp_path / "gsm.jsonl"
    other.write_text(json.dumps({"question": "q", "answer": "#### 4"}) + "\n")
    with pytest.raises(HoneError, match="this record is not mmlu"):
        import_tasks(other, "mmlu")


def test_loglik_scores_equal_one_sequence_at_a_time(tiny_model_dir):
    from hone.chat import encode, render_prompt
    from hone.models.loading import load_model, load_tokenizer

    model, tok = load_model(tiny_model_dir, device="cpu"), load_tokenizer(tiny_model_dir)
    messages = [{"role": "user", "content": "Which one?\nA. 3\nB. 4\nC. 5\n\nAnswer:"}]
    prompt = render_prompt(tok, messages)
    context = encode(tok, prompt)
    # letters (one token each: the one-pass path) and whole options (several tokens: the padded batch)
    for continuations in (["A", "B", "C"], ["A. 3", "B. 4 apples", "C"]):
        scores = option_logprobs(model, tok, messages, continuations)
        for text, score in zip(continuations, scores):
            ids = encode(tok, prompt + text)
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
            expected = sum(float(logp[p - 1, ids[p]]) for p in range(len(context), len(ids)))
            assert score == pytest.approx(expected, abs=1e-4)


def test_bench_scores_mmlu_by_loglik_or_by_generation(tiny_model_dir, shared_data, tmp_path):
    from hone.bench.run import BenchConfig, run_bench
    from hone.generate.base import GenParams

    tasks = sorted(import_tasks(shared_data / "mmlu_sample.jsonl", "mmlu"), key=lambda t: len(t.prompt))[:6]
    write_records(tmp_path / "mmlu.jsonl", tasks)
    params = GenParams(max_new_tokens=6, batch_size=6)
    report = run_bench(BenchConfig(params=params, choice_scoring="loglik"), tiny_model_dir,
                       [str(tmp_path / "mmlu.jsonl")], tmp_path / "ll").report
    acc = report.suites["mmlu"].accuracy
    gens = [json.loads(x) for x in (tmp_path / "ll" / "mmlu" / "generations.jsonl").read_text().splitlines()]
    assert len(gens) == 6 and all(len(g["params"]["loglik"]) == 4 for g in gens)
    for g in gens:  # the answer is the likeliest letter
        assert g["output"] == max(g["params"]["loglik"], key=g["params"]["loglik"].get)
    verdicts = [json.loads(x) for x in (tmp_path / "ll" / "mmlu" / "verdicts.jsonl").read_text().splitlines()]
    right = sum(g["output"] == t.reference for g, t in zip(gens, tasks))
    assert sum(v["verdict"] == "pass" for v in verdicts) == right == acc.passed
    assert acc.graded_tasks == 6 and acc.accuracy == pytest.approx(right / 6)
    generated = run_bench(BenchConfig(params=params), tiny_model_dir, [str(tmp_path / "mmlu.jsonl")], tmp_path / "gen")
    assert generated.report.suites["mmlu"].accuracy.graded_tasks == 6  # by the choice verifier, whatever it said
    with pytest.raises(HoneError, match="use generate or loglik"):
        run_bench(BenchConfig(params=params, choice_scoring="sample"), tiny_model_dir, [str(tmp_path / "mmlu.jsonl")],
                  tmp_path / "x")


def test_a_prompt_past_the_context_is_an_error_item_not_a_crash(tiny_model_dir):
    from hone.generate.base import GenParams, Request
    from hone.generate.hf import HFGenerator

    inner = HFGenerator.from_dir(str(tiny_model_dir), device="cpu")
    long = Task(id="long", kind="choice", prompt="word " * 3000, options=["a", "b"], reference="A")
    short = Task(id="short", kind="choice", prompt="Pick one.\nA. a\nB. b", options=["a", "b"], reference="A")
    gen = LoglikChoiceGenerator(inner, {t.id: t for t in (long, short)})
    out = {g.id: g for g in gen.generate([Request(t.id, 0, t.chat()) for t in (long, short)], GenParams())}
    assert out["long"].finish_reason == "error" and "exceeds the model's context" in out["long"].output
    assert out["short"].finish_reason == "stop" and out["short"].output in ("A", "B")
