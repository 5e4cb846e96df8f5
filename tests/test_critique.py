import re

import pytest

from hone.chat import render_prompt
from hone.critique.run import CritiqueStageConfig, run_critique
from hone.critique.feedback import WITHHELD, describe_failure, withhold_reference
from hone.bench.stats import paired_difference_ci
from hone.critique.summary import format_summary, summarize
from hone.errors import HoneError
from hone.evidence import MathEvidence
from hone.generate.base import GenParams
from hone.generate.hf import HFGenerator
from hone.hashing import text_sha256
from hone.records import Critique, Generation, Task, Verdict, read_records, write_records

JUDGE = "exact-number"
# (a, b, wrong answer): references are five-digit sums that neither the prompts nor the wrong answers contain.
PROBLEMS = [(41234, 57531, "41"), (50505, 40404, "90000"), (12345, 67890, "80000"), (33333, 44444, "7"),
            (20202, 30313, "50"), (11111, 22223, "3")]


def _tasks():
    return [Task(id=f"t{i}", kind="math", prompt=f"What is {a} + {b}?", reference=str(a + b))
            for i, (a, b, _) in enumerate(PROBLEMS)]


def exact_number_judge(items):
    """A deterministic verifier for the tests: the last number of the answer must equal the reference."""
    out = []
    for task, g in items:
        nums = re.findall(r"-?\d+", g.output.replace(",", ""))
        ok = bool(nums) and nums[-1] == task.reference
        out.append(Verdict(id=g.id, sample=g.sample, judge=JUDGE, verdict="pass" if ok else "fail",
                           reason="correct" if ok else f"expected {task.reference}, got {nums[-1] if nums else None}"))
    return out


@pytest.fixture
def inputs(tmp_path):
    """Six tasks: four failed (with feedback that quotes the reference), one passed, one tie, one judge error."""
    tasks = _tasks()
    gens, verdicts = [], []
    for t, (a, b, wrong) in zip(tasks, PROBLEMS):
        gens.append(Generation(id=t.id, model="m", output=f"The answer is {wrong}.", finish_reason="stop"))
    gens[4] = gens[4].model_copy(update={"output": f"The answer is {tasks[4].reference}."})
    verdicts = exact_number_judge(list(zip(tasks, gens)))
    for v in verdicts[:4]:  # ground truth and what was read from the answer, as a math verifier records them
        v.evidence = MathEvidence(gold=v.reason.split()[1].rstrip(","), extracted=v.reason.split()[-1])
    verdicts[5] = verdicts[5].model_copy(update={"verdict": "error", "reason": "judge unparsable"})
    verdicts.append(Verdict(id="t3", sample=1, judge=JUDGE, verdict="tie"))
    gens.append(Generation(id="t3", sample=1, model="m", output="No idea.", finish_reason="stop"))
    paths = {name: tmp_path / f"{name}.jsonl" for name in ("tasks", "generations", "verdicts")}
    write_records(paths["tasks"], tasks)
    write_records(paths["generations"], gens)
    write_records(paths["verdicts"], verdicts)
    return paths


class RecordingGenerator:
    """Wraps a real generator and keeps the exact text every request rendered to."""

    def __init__(self, inner, tokenizer):
        self.inner, self.tokenizer, self.name = inner, tokenizer, inner.name
        self.prompts: list[str] = []
        self.calls = 0

    def generate(self, requests, params, progress=None):
        self.calls += 1
        self.prompts += [render_prompt(self.tokenizer, r.messages) for r in requests]
        return self.inner.generate(requests, params, progress)


class ArithmeticSolver:
    """A test double standing in for a model that can fix its answer: it solves `a + b` from the task text,
    and (to exercise rejections) gets the sum wrong on every task whose id is in `stubborn`."""

    name = "arithmetic-solver"

    def __init__(self, stubborn=()):
        self.stubborn = set(stubborn)
        self.seen: list[tuple[str, int]] = []

    def generate(self, requests, params, progress=None):
        for r in requests:
            self.seen.append((r.id, r.sample))
            a, b = map(int, re.findall(r"(\d+) \+ (\d+)", r.messages[0]["content"])[0])
            critique = r.messages[-1]["content"].startswith("Your answer above")
            answer = a + b + (1 if r.id in self.stubborn else 0)
            text = "I added the numbers wrongly." if critique else f"{a} + {b} = {answer}"
            yield Generation(id=r.id, sample=r.sample, model=self.name, output=text, finish_reason="stop")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir, tiny_tokenizer):
    return RecordingGenerator(HFGenerator.from_dir(str(tiny_model_dir), device="cpu"), tiny_tokenizer)


def _run(gen, inputs, out, rejudge=exact_number_judge, **settings):
    settings.setdefault("params", GenParams(max_new_tokens=12, batch_size=8))
    return run_critique(CritiqueStageConfig(**settings), gen, rejudge, inputs["tasks"], inputs["generations"],
                        inputs["verdicts"], out).critiques


def test_self_critique_prompts_never_contain_the_reference(tiny, inputs, tmp_path):
    tiny.prompts.clear()
    records = _run(tiny, inputs, tmp_path / "c.jsonl", round=2)
    refs = [t.reference for t in _tasks()]
    assert [(c.id, c.sample) for c in records] == [("t0", 0), ("t1", 0), ("t2", 0), ("t3", 0)]
    assert len(tiny.prompts) == 8  # critique turn and rewrite turn for each failed answer
    for prompt in tiny.prompts:
        assert not any(ref in prompt for ref in refs)
        assert "<|start_header_id|>assistant<|end_header_id|>" in prompt  # the model's own template
    first = [p for p in tiny.prompts if "What is 41234 + 57531?" in p]
    assert any("The answer is 41." in p and f"expected {WITHHELD}" in p and "extracted: 41" in p for p in first)
    assert any("Now write the corrected answer" in p for p in first)
    for c in records:
        assert c.mode == "self-critique" and c.judge == JUDGE and c.round == 2 and c.model == tiny.name
        assert c.original_verdict == "fail" and c.rewrite_verdict in ("pass", "fail")
        assert c.accepted == (c.rewrite_verdict == "pass")
    assert read_records(tmp_path / "c.jsonl", Critique) == records


def test_reference_guided_is_labelled_distillation(tiny, inputs, tmp_path):
    tiny.prompts.clear()
    records = _run(tiny, inputs, tmp_path / "d.jsonl", reference_guided=True)
    assert any("98765" in p and "A reference answer" in p for p in tiny.prompts)
    assert records and all(c.mode == "distillation" for c in records)
    text = format_summary(summarize(records))
    assert "distillation" in text and "self-critique" not in text


def test_rewrites_are_rejudged_live_and_summarised(inputs, tmp_path):
    solver = ArithmeticSolver(stubborn={"t1"})
    records = _run(solver, inputs, tmp_path / "c.jsonl")
    assert {c.id: c.accepted for c in records} == {"t0": True, "t1": False, "t2": True, "t3": True}
    assert records[1].rewrite_reason.startswith("expected") and records[0].rewrite == "41234 + 57531 = 98765"
    s = summarize(records)
    assert (s.failed_items, s.attempts, s.accepted, s.fixed_first_attempt) == (4, 4, 3, 3)
    assert s.uplift == 0.75 and s.acceptance_rate == 0.75
    lo, hi = s.uplift_ci95  # paired: 0 both right, 3 right only after, 0 right only before, 1 neither
    assert (lo, hi) == paired_difference_ci(0, 3, 0, 1) and 0.0 < lo < 0.75 < hi <= 1.0
    assert s.mcnemar_p == 0.25
    assert "+3/4" in format_summary(s) and "self-critique" in format_summary(s)


def test_several_samples_per_answer(inputs, tmp_path):
    solver = ArithmeticSolver()
    records = _run(solver, inputs, tmp_path / "c.jsonl", samples=3,
                   params=GenParams(max_new_tokens=8, temperature=1.0, batch_size=5))
    assert [(c.id, c.attempt) for c in records] == [(f"t{i}", k) for i in range(4) for k in range(3)]
    assert len(set(solver.seen)) == len(solver.seen) // 2  # each attempt has its own request key, two turns
    s = summarize(records)
    assert (s.failed_items, s.attempts, s.fixed_any_attempt) == (4, 12, 4)
    assert "any of the attempts: 4/4" in format_summary(s)


def test_resume_after_a_kill_in_the_middle(inputs, tmp_path):
    out = tmp_path / "c.jsonl"
    batches = []

    def dies_on_second_batch(items):
        batches.append(items)
        if len(batches) == 2:
            raise KeyboardInterrupt
        return exact_number_judge(items)

    first = ArithmeticSolver()
    with pytest.raises(KeyboardInterrupt):
        _run(first, inputs, out, rejudge=dies_on_second_batch, params=GenParams(max_new_tokens=8, batch_size=2))
    partial = read_records(str(out) + ".partial", Critique)
    assert [c.id for c in partial] == ["t0", "t1"] and not out.exists()

    second = ArithmeticSolver()
    records = _run(second, inputs, out, params=GenParams(max_new_tokens=8, batch_size=2))
    assert [c.id for c in records] == ["t0", "t1", "t2", "t3"] and records[:2] == partial
    assert {i for i, _ in second.seen} == {"t2", "t3"}  # finished work is not redone
    assert not (tmp_path / "c.jsonl.partial").exists()

    third = ArithmeticSolver()
    assert _run(third, inputs, out, params=GenParams(max_new_tokens=8, batch_size=2)) == records
    assert third.seen == []  # same inputs and config: the stage is skipped


def test_bad_inputs_are_clear_errors(inputs, tmp_path):
    gens = read_records(inputs["generations"], Generation)
    write_records(inputs["generations"], gens[1:])
    with pytest.raises(HoneError, match="verdict for 't0' sample 0 has no generation"):
        _run(ArithmeticSolver(), inputs, tmp_path / "c.jsonl")
    write_records(inputs["generations"], gens)

    with pytest.raises(HoneError, match="need a temperature above 0"):
        _run(ArithmeticSolver(), inputs, tmp_path / "c.jsonl", samples=2)

    def other_judge(items):
        return [v.model_copy(update={"judge": "claude"}) for v in exact_number_judge(items)]

    with pytest.raises(HoneError, match="same judge"):
        _run(ArithmeticSolver(), inputs, tmp_path / "c.jsonl", rejudge=other_judge)

    with pytest.raises(HoneError, match="returned 1 verdicts for 4"):
        _run(ArithmeticSolver(), inputs, tmp_path / "c.jsonl", rejudge=lambda items: exact_number_judge(items)[:1])
    assert not (tmp_path / "c.jsonl").exists()

    verdicts = read_records(inputs["verdicts"], Verdict)
    write_records(inputs["verdicts"], [*verdicts, verdicts[0].model_copy(update={"id": "nope"})])
    with pytest.raises(HoneError, match="'nope', which is not a task"):
        _run(ArithmeticSolver(), inputs, tmp_path / "c.jsonl")

    stale = verdicts[1].model_copy(update={"evidence": {"judged_sha256": text_sha256("an older answer")}})
    write_records(inputs["verdicts"], [verdicts[0], stale])
    with pytest.raises(HoneError, match="'t1' sample 0 judged another answer"):
        _run(ArithmeticSolver(), inputs, tmp_path / "c.jsonl")
    assert not (tmp_path / "c.jsonl").exists()


def test_feedback_withholds_the_reference_in_every_spelling():
    task = Task(id="x", kind="math", prompt="?", reference="98765")
    v = Verdict(id="x", judge="j", verdict="fail", reason="Expected 98,765 (98765.0), got 98764; 198765 differs.",
                evidence={"gold": "98765", "parsed": ["98764"], "note": "ref=98765"})
    text = describe_failure(task, v)
    assert not re.search(r"(?<!\d)98,?765(?!\d)", text) and "98764" in text and "198765" in text
    # Only allow-listed evidence fields are shown: not the gold answer, nor keys a judge adds ("parsed", "note").
    assert "gold" not in text and "parsed" not in text and "note" not in text and text.count(WITHHELD) == 2
    assert "98765" in describe_failure(task, v, reveal_reference=True)
    assert withhold_reference("a cat sat", "cat") == f"a {WITHHELD} sat"
    assert withhold_reference("concat", "cat") == "concat"


@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    """Four math tasks, answers, and their verdicts from the real verifier judge (math-verify)."""
    from hone.judge import judge_all, make_judge

    tmp_path = tmp_path_factory.mktemp("verified")
    tasks = _tasks()[:4]
    gens = [Generation(id=t.id, model="m", output=f"The answer is {o}.", finish_reason="stop")
            for t, o in zip(tasks, ["41", "90909", "80000", "7"])]
    verdicts = judge_all(make_judge("verifier"), list(zip(tasks, gens)))
    paths = {name: tmp_path / f"{name}.jsonl" for name in ("tasks", "generations", "verdicts")}
    write_records(paths["tasks"], tasks)
    write_records(paths["generations"], gens)
    write_records(paths["verdicts"], verdicts)
    return paths, verdicts


def test_rejudged_by_the_real_verifier(verified, tmp_path):
    from hone.judge import judge_all, make_judge

    paths, verdicts = verified
    assert [v.verdict for v in verdicts] == ["fail", "pass", "fail", "fail"]
    judge = make_judge("verifier")
    records = _run(ArithmeticSolver(stubborn={"t3"}), paths, tmp_path / "c.jsonl",
                   rejudge=lambda items: judge_all(judge, items))
    assert {c.id: c.accepted for c in records} == {"t0": True, "t2": True, "t3": False}
    assert all(c.judge == verdicts[0].judge and c.judge.startswith("verifier:math") for c in records)
    for c in records:  # math-verify names the reference in its reason and evidence; the model is not shown it
        assert c.feedback and WITHHELD in c.feedback and _tasks()[int(c.id[1:])].reference not in c.feedback


def test_cli_critique_with_the_tiny_model(tiny_model_dir, verified, tmp_path):
    import subprocess
    import sys

    paths, _ = verified
    out = tmp_path / "c.jsonl"
    args = [sys.executable, "-m", "hone.cli", "critique", "--model", str(tiny_model_dir), "--tasks",
            str(paths["tasks"]), "--generations", str(paths["generations"]), "--verdicts", str(paths["verdicts"]),
            "-o", str(out), "--judge", "verifier", "--max-new-tokens", "8", "--round", "1"]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    records = read_records(out, Critique)
    assert [c.id for c in records] == ["t0", "t2", "t3"] and all(c.round == 1 for c in records)
    assert "3 failed answers" in r.stdout and "paired uplift on the failed items" in r.stdout
    assert "95% CI" in r.stdout and "self-critique" in r.stdout
    r = subprocess.run([*args[:-4], "--samples", "2"], capture_output=True, text=True)
    assert r.returncode == 2 and "need a temperature above 0" in r.stderr and "Traceback" not in r.stderr


def test_retryable_judge_errors_are_redone_on_the_next_run(inputs, tmp_path):
    from hone.judge.base import error_verdict

    out = tmp_path / "c.jsonl"

    def api_down_for_t2(items):
        return [error_verdict(g, JUDGE, "529 overloaded", "api") if g.id == "t2" else v
                for (t, g), v in zip(items, exact_number_judge(items))]

    first = _run(ArithmeticSolver(), inputs, out, rejudge=api_down_for_t2)
    assert [c.rewrite_verdict for c in first] == ["pass", "pass", "error", "pass"]
    assert read_records(out, Critique) == first and (tmp_path / "c.jsonl.partial").exists()  # not final

    again = ArithmeticSolver()
    second = _run(again, inputs, out)
    assert {i for i, _ in again.seen} == {"t2"}  # only the unfinished attempt is redone
    assert [c.rewrite_verdict for c in second] == ["pass"] * 4 and not (tmp_path / "c.jsonl.partial").exists()
