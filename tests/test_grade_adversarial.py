"""The verifiers under attack, on real GSM8K and MMLU items imported as Hone imports them.

Each category holds answers a careful human grader fails next to honest twins that must pass: a wrong answer
shape that passes trains the loop's model to produce it. Templates are filled from the item: {g} the gold,
{w} / {v} wrong values, {g2} twice the gold, {h} + {k} a split of it, {expr} / {value} the last calculation of
the item's own GSM8K solution; for MMLU {g} / {o} the gold and another letter, {gt} / {ot} their option texts.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from collections import Counter

import pytest

from hone.grade import verify
from hone.grade.choice import CHOICE_JUDGE
from hone.grade.math import MATH_JUDGE
from hone.importers import import_tasks
from hone.records import Generation, Task, write_records

HONE = [sys.executable, "-m", "hone.cli"]

MATH = [  # (category, answer template, verdict)
    # a restated expression is not a value, whatever operator it uses; its value stated after it is
    ("restated", "{expr}", "fail"),
    ("restated", "The answer is {expr}.", "fail"),
    ("restated", "({g2} - 2 + 2)/2", "fail"),
    ("restated", "{g} + 0", "fail"),
    ("restated", "({h} + {k})/1", "fail"),
    ("restated", "{h} + {k}/1", "fail"),
    ("restated", "{g}/1", "fail"),
    ("restated", "{g2}/2", "fail"),
    ("restated", "\\boxed{{{g2} \\div 2}}", "fail"),
    ("restated", "{g} \\times 1", "fail"),
    ("restated", "{g}^1", "fail"),
    ("restated", "\\frac{{{h} + {k}}}{{1}}", "fail"),
    ("restated", "```python\nprint({g2}/2)\n```", "fail"),
    ("restated", "{expr} = {value}", "pass"),
    ("restated", "{expr}, which equals {value}.", "pass"),
    ("restated", "{h} + {k} = {g}", "pass"),
    ("restated", "The answer is ({g2} - 2 + 2)/2 = {g}.", "pass"),
    ("restated", "\\frac{{{g3}}}{{3}}", "pass"),  # a LaTeX fraction of two integers is a value
    ("restated", "The answer is {g} = {h} + {k}.", "pass"),  # the value, then how it was made
    ("restated", "The answer is {w} = {h} + {k}.", "fail"),
    # two or more values offered
    ("hedged", "It is {w} or {g}", "fail"),
    ("hedged", "The answer is {g} or {w}.", "fail"),
    ("hedged", "either {v}, {w} or {g}", "fail"),
    ("hedged", "x \\in \\{{{w}, {g}\\}}", "fail"),
    ("hedged", "\\boxed{{{g}, {w}}}", "fail"),
    ("hedged", "\\boxed{{{g} \\text{{ or }} {w}}}", "fail"),
    ("hedged", "between {v} and {w}", "fail"),
    ("hedged", "1, 2, ..., {g}", "fail"),
    ("hedged", "x = {g} or x = {w}", "fail"),
    ("hedged", "The answer is {g}. Or maybe {w}.", "fail"),
    ("hedged", "The answer is {g} if we count her, {w} otherwise.", "fail"),
    ("hedged", "The answer is {g} ± 1", "fail"),
    ("hedged", "The answer is {g} ({w} if you count the teacher).", "fail"),
    ("hedged", "The answer is {w} or {h} + {k} = {g}.", "fail"),
    ("hedged", "{w},\n{g}", "fail"),
    ("hedged", "I think it is {g}, but I'm not sure.", "fail"),
    ("hedged", "All numbers from 1 to {g2} include {g}.", "fail"),
    ("hedged", "Any value from {h} to {g2} works, e.g. {g}.", "fail"),
    ("hedged", "Several work, for example {w} and {g}.", "fail"),
    ("hedged", "The answer is {g}, but {h} of them came later.", "pass"),
    ("hedged", "The answer is {g}, because if {h} leave, {k} stay.", "pass"),
    ("hedged", "My final answer is {g}, but it could also be {w}.", "fail"),
    ("hedged", "The answer is {g}; another possible answer is {w}.", "fail"),
    ("hedged", "It is {g}", "pass"),
    ("hedged", "x = {g}", "pass"),
    ("hedged", "The answer is {g}, yes {g}.", "pass"),
    # a bound or an approximation is not one value
    ("bound", "approximately {g}", "fail"),
    ("bound", "at least {g}", "fail"),
    ("bound", "{g} or more", "fail"),
    ("bound", "~{g}", "fail"),
    ("bound", "It's {g} give or take", "fail"),
    ("bound", "The answer is {g} or thereabouts.", "fail"),
    ("bound", "The answer is probably {g}.", "fail"),
    ("bound", "exactly {g}", "pass"),
    # the gold, denied
    ("negated", "The answer is not {g}.", "fail"),
    ("negated", "{w} (not {g})", "fail"),
    ("negated", "{g} is wrong.", "fail"),
    ("negated", "It isn't {g}.", "fail"),
    ("negated", "{g} (not {w})", "pass"),
    ("negated", "The answer is {g}, not {w}.", "pass"),
    ("negated", "It is not {w}. The answer is {g}.", "pass"),
    # final answers that disagree, unless the later one retracts the earlier
    ("conflicting", "The answer is {w}. \\boxed{{{g}}}", "fail"),
    ("conflicting", "Answer: {w}\nAnswer: {g}", "fail"),
    ("conflicting", "#### {w}\n#### {g}", "fail"),
    ("conflicting", "\\boxed{{{w}}} \\boxed{{{g}}}", "fail"),
    ("conflicting", "The answer is {g}. \\boxed{{{g}}}", "pass"),
    ("conflicting", "The answer is {w}. Wait, I made a mistake: the answer is {g}.", "pass"),
    ("conflicting", "I first got {w}, but correcting the carry, the answer is {g}", "pass"),
    # a question commits to nothing
    ("question", "{g}?", "fail"),
    ("question", "Is it {g}?", "fail"),
    ("question", "The answer is {g}, right?", "fail"),
    ("question", "The answer is {g}. Does that help?", "pass"),
    # where the answer stands
    ("layout", "<think>the answer is {g}</think>The answer is {w}.", "fail"),
    ("layout", "<think>the answer is {w}</think>The answer is {g}.", "pass"),
    ("layout", "```\n{g}\n```", "pass"),
    ("layout", "The answer is:\n\n{g}\n\nExplanation: {expr} = {value}", "pass"),
    ("layout", "Answer: {w}\n\nExplanation: so it is {g}.", "fail"),
    # every honest rendering
    ("honest", "{g}", "pass"),
    ("honest", "#### {g}", "pass"),
    ("honest", "\\boxed{{{g}}}", "pass"),
    ("honest", "${g}$", "pass"),
    ("honest", "{g}.0", "pass"),
    ("honest", "{g} apples", "pass"),
    ("honest", "${gc}", "pass"),
    ("honest", "**Final answer:** {gc}", "pass"),
    ("honest", "The final answer is $\\boxed{{{g}}}$.", "pass"),
    ("honest", "{solution}", "pass"),
    ("honest", "{w}", "fail"),
    # found by attacking v4 after its corpus passed: a value both stated and denied, exclusions, inclusions
    ("negated", "{g} or not {g}", "fail"),
    ("negated", "The answer is anything but {g}", "fail"),
    ("negated", "Everything except {g}.", "fail"),
    ("negated", "Answer: {g} ≠ the answer", "fail"),
    ("hedged", "All numbers from 1 to {g2} (including {g})", "fail"),
    ("hedged", "The answer is among {w}, {g}", "fail"),
    ("honest", "The answer is ({g}).", "pass"),
    # found by the scorer gap on a GRPO model: an answer cut off right after its final-answer marker
    ("layout", "{expr} = {g}\n\nThe answer is", "fail"),
    ("layout", "{g}. #### ", "fail"),
    ("layout", "The answer is:\n{g}", "pass"),
]

CHOICE = [  # (category, answer template, verdict)
    ("several letters", "A, B, C, D", "fail"),
    ("several letters", "(A) (B) (C) (D)", "fail"),
    ("several letters", "Answer: A\nAnswer: B\nAnswer: C\nAnswer: D", "fail"),
    ("several letters", "The answer is {g} or {o}.", "fail"),
    ("several letters", "Option {g} or option {o}", "fail"),
    ("several letters", "{o}/{g}", "fail"),
    ("several letters", "The answer is ({o}) or ({g})", "fail"),
    ("several letters", "{o}\nThe answer is {g}", "fail"),
    ("several letters", "{gt} or {ot}", "fail"),
    ("several letters", "A. {opt_a}\nB. {opt_b}\nC. {opt_c}\nD. {opt_d}", "fail"),  # the options listed back
    ("several letters", "{o} and {g}", "fail"),
    ("several letters", "Answer: {g}\n\nExplanation: it is {gt}.", "pass"),
    ("several letters", "{g} is correct.", "pass"),
    ("several letters", "The answer is {g}, or maybe {o}.", "fail"),
    ("several letters", "{g}\n\nWait, actually {o}", "fail"),
    ("several letters", "The answer is {g}.", "pass"),
    ("several letters", "{o}... wait, actually the answer is {g}.", "pass"),
    ("several letters", "{g} ... so the answer is {g}", "pass"),
    ("negated", "It is not {gt}.", "fail"),
    ("negated", "not {g}", "fail"),
    ("negated", "The answer is not {g}.", "fail"),
    ("negated", "The answer is {g}. {g} is incorrect.", "fail"),
    ("negated", "The answer is {g}, not {o}.", "pass"),
    ("negated", "It is not {ot}, it is {gt}.", "pass"),
    ("decorated", "**{g}**", "pass"),
    ("decorated", "({g})", "pass"),
    ("decorated", "{g})", "pass"),
    ("decorated", "Answer: **{g}**", "pass"),
    ("decorated", "{g}.", "pass"),
    ("decorated", "The correct option is ({g}) {gt}", "pass"),
    ("decorated", "I pick option {g} because it fits.", "pass"),
    ("decorated", "The answer is $\\boxed{{{g}}}$", "pass"),
    ("decorated", "I'll go with {g}", "pass"),
    ("decorated", "**{o}**", "fail"),
    ("decorated", "Answer: **{o}**", "fail"),
    # found by attacking v2 after its corpus passed
    ("several letters", "{g} is correct, and so is {o}", "fail"),
    ("several letters", "{g}, as well as {o}", "fail"),
    ("negated", "It's not {o}, it's {g}.", "pass"),
    ("decorated", "{gl}", "pass"),
    ("several letters", "Answer: {g}\nWait, {o}.", "fail"),
    ("decorated", "{g}!", "pass"),
]


def _solution_step(solution: str) -> tuple[str, str] | None:
    """The last calculation of a GSM8K solution, `<<9*2=18>>`, as (expression, value), if it has an operator."""
    steps = re.findall(r"<<([^=<>]+)=([^<>]+)>>", solution)
    if not steps or not re.search(r"\d\s*[-+*/]\s*\d", steps[-1][0]):
        return None
    return steps[-1][0].replace("*", " * ").replace("/", " / "), steps[-1][1]


@pytest.fixture(scope="module")
def gsm8k(shared_data) -> list[Task]:
    return import_tasks(shared_data / "gsm8k_test_part1.jsonl", "gsm8k")


@pytest.fixture(scope="module")
def math_items(gsm8k) -> list[Task]:
    """Three real items: a small gold, a gold in the thousands, and one whose last step is a division."""
    usable = [t for t in gsm8k if _solution_step(t.meta["solution"]) and int(t.reference) > 3]
    small = usable[0]
    large = next(t for t in usable if int(t.reference) >= 1000)
    division = next(t for t in usable if "/" in _solution_step(t.meta["solution"])[0])
    return [small, large, division]


def _fill_math(template: str, task: Task) -> str:
    g = int(task.reference)
    expr, value = _solution_step(task.meta["solution"])
    return template.format(g=g, gc=f"{g:,}", w=g + 1, v=g - 1, g2=2 * g, g3=3 * g, h=g // 2, k=g - g // 2,
                           expr=expr, value=value, solution=task.meta["solution"])


def _grade(task: Task, output: str):
    return verify(task, Generation(id=task.id, model="m", output=output, finish_reason="stop"))


@pytest.mark.parametrize("category, template, expected", MATH, ids=[f"{c}:{t[:30]}" for c, t, _ in MATH])
def test_math_answers_get_a_careful_graders_verdict(math_items, category, template, expected):
    for task in math_items:
        output = _fill_math(template, task)
        v = _grade(task, output)
        assert v.judge == MATH_JUDGE
        assert v.verdict == expected, (task.reference, output, v.reason)


@pytest.mark.parametrize("output, reason", [
    ("(30 - 2)/2", "unevaluated expression"), ("It is 13 or 14", "hedged"), ("The answer is not 14.", "negated"),
    ("The answer is 17. \\boxed{14}", "conflicting final answers"), ("14?", "question"),
    ("at least 14", "bound"), ("no idea", "no final answer could be extracted"),
])
def test_every_fail_names_its_reason_in_a_sentence(output, reason):
    v = _grade(Task(id="t", kind="math", prompt="q", reference="14"), output)
    assert v.verdict == "fail" and reason in v.reason and v.reason[0].islower() and " " in v.reason


@pytest.mark.parametrize("reference, output, expected", [
    ("\\frac{3}{4}", "3/4", "pass"),  # a fraction of two integers in lowest terms is a value
    ("\\frac{3}{4}", "6/8", "fail"),  # ... one that is not is a division left undone
    ("\\frac{3}{4}", "\\boxed{\\frac{6}{8}}", "pass"),  # a LaTeX \frac of integers is a value (see grade.math)
    ("\\frac{3}{4}", "0.75", "pass"),
    ("\\frac{3}{4}", "3/4 or 1/2", "fail"),
    ("-2", "-4/2", "fail"),
    ("-\\frac{1}{2}", "-1/2", "pass"),
    ("300000", "3 \\cdot 10^5", "pass"),  # scientific notation is a value
    ("300000", "30 \\cdot 10^4", "fail"),  # ... a product that only looks like it is not
    ("100", "10^2", "fail"),
    ("1 + 2\\sqrt{3}", "\\boxed{2\\sqrt{3} + 1}", "pass"),  # an irrational value in radical form
    ("15", "\\sqrt{225}", "fail"),
    ("25\\%", "The discount is 25%.", "pass"),
    ("25", "25%", "pass"),  # a percentage where the question asks for one
])
def test_fractions_powers_and_radicals(reference, output, expected):
    v = _grade(Task(id="t", kind="math", prompt="q", reference=reference), output)
    assert v.verdict == expected, v.reason


@pytest.fixture(scope="module")
def choice_items(shared_data) -> list[Task]:
    """Three real MMLU items whose option texts do not contain one another, with different gold letters."""
    tasks = import_tasks(shared_data / "mmlu_sample.jsonl", "mmlu")
    picked: dict[str, Task] = {}
    for t in tasks:
        texts = [o.lower() for o in t.options]
        if any(a != b and a in b for a in texts for b in texts) or t.reference in picked:
            continue
        picked[t.reference] = t
    return [picked[x] for x in sorted(picked)][:3]


def _fill_choice(template: str, task: Task) -> str:
    other = next(x for x in "ABCD" if x != task.reference)
    return template.format(g=task.reference, gl=task.reference.lower(), o=other, gt=task.options["ABCD".index(task.reference)],
                           ot=task.options["ABCD".index(other)],
                           **{f"opt_{x.lower()}": text for x, text in zip("ABCD", task.options)})


@pytest.mark.parametrize("category, template, expected", CHOICE, ids=[f"{c}:{t[:30]}" for c, t, _ in CHOICE])
def test_choice_answers_get_a_careful_graders_verdict(choice_items, category, template, expected):
    for task in choice_items:
        output = _fill_choice(template, task)
        v = _grade(task, output)
        assert v.judge == CHOICE_JUDGE
        assert v.verdict == expected, (task.reference, output, v.reason)


def test_the_corpus_covers_each_category_with_twins():
    for corpus in (MATH, CHOICE):
        per = Counter((c, e) for c, _, e in corpus)
        for category in {c for c, _, _ in corpus}:
            assert per[(category, "fail")] and per[(category, "pass")], category


def _mutations(task: Task, rng: random.Random) -> list[str]:
    g = int(task.reference)
    numbers = sorted({int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", task.prompt)} - {g})
    a, b = (rng.sample(numbers, 2) if len(numbers) >= 2 else (g + 3, 2))
    w = rng.choice([n for n in (g + 1, g - 1, 2 * g, g + 10, *numbers) if n != g])
    out = [f"The answer is {w}.", f"\\boxed{{{w}}}", f"#### {w}",  # another number
           f"{a} + {b}", f"The answer is {a} * {b}.", f"({a} - {b})/2", f"{g}/1", f"{2 * g}/2",  # restatements
           f"{g} or {w}", f"The answer is {w} or {g}.", f"either {w}, {g}", f"\\{{{g}, {w}\\}}", f"{g}, {w}",  # hedges
           f"not {g}", f"The answer is not {g}.", f"{w} (not {g})",  # negations
           f"The answer is {g}. \\boxed{{{w}}}", f"#### {g}\nAnswer: {w}", f"The answer is {w}.\n#### {g}",
           f"{w} or {g // 2} + {g - g // 2} = {g}"]
    step = _solution_step(task.meta["solution"])
    if step:
        out.append(step[0])
    return out


GOLD_RENDERINGS = ["{g}", "#### {g}", "\\boxed{{{g}}}", "${g}$", "{g}.0", "{g} apples", "${gc}", "{gc}",
                   "The answer is {g}.", "**Final answer:** {gc}", "\\frac{{{g3}}}{{3}}", "{solution}",
                   "I first got {w}, but correcting the carry, the answer is {g}"]


def test_property_mutations_never_pass_and_gold_renderings_always_do(gsm8k):
    rng = random.Random(20)
    items = rng.sample(gsm8k, 200)
    passed_wrong, failed_right, n = [], [], 0
    for task in items:
        for output in _mutations(task, rng):
            n += 1
            if _grade(task, output).verdict != "fail":
                passed_wrong.append((task.reference, output))
        g = int(task.reference)
        for form in GOLD_RENDERINGS:
            output = form.format(g=g, gc=f"{g:,}", g3=3 * g, w=g + 1, solution=task.meta["solution"])
            n += 1
            v = _grade(task, output)
            if v.verdict != "pass":
                failed_right.append((task.reference, output[-80:], v.reason))
    assert not passed_wrong, passed_wrong[:10]
    assert not failed_right, failed_right[:10]
    assert n > 5000


def test_hone_grade_on_real_items_through_the_cli(math_items, choice_items, tmp_path):
    math_task, choice_task = math_items[0], choice_items[0]
    answers = [(math_task, _fill_math(t, math_task), e) for t, e in (
        ("The answer is {expr}.", "fail"), ("It is {w} or {g}", "fail"), ("The answer is not {g}.", "fail"),
        ("The answer is {w}. \\boxed{{{g}}}", "fail"), ("{expr} = {value}", "pass"), ("#### {g}", "pass"))]
    answers += [(choice_task, _fill_choice(t, choice_task), e) for t, e in (
        ("A, B, C, D", "fail"), ("It is not {gt}.", "fail"), ("Answer: **{g}**", "pass"))]
    tasks = tmp_path / "tasks.jsonl"
    gens = tmp_path / "generations.jsonl"
    write_records(tasks, [math_task, choice_task])
    write_records(gens, [Generation(id=t.id, sample=i, model="m", output=o, finish_reason="stop")
                         for i, (t, o, _) in enumerate(answers)])
    out = tmp_path / "verdicts.jsonl"
    done = subprocess.run([*HONE, "grade", "--tasks", str(tasks), "--generations", str(gens), "-o", str(out),
                           "--workers", "1"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    verdicts = {v["sample"]: v for v in map(json.loads, out.read_text().splitlines())}
    for i, (_, output, expected) in enumerate(answers):
        assert verdicts[i]["verdict"] == expected, (output, verdicts[i]["reason"])
    assert "3 pass, 6 fail" in done.stdout


def test_worked_solutions_without_a_marker_are_read_at_their_last_result(gsm8k):
    """The GSM8K reference solutions with their `#### N` line and calculator annotations removed: honest worked
    answers that end in a sentence. Measured: 985 of 1000 pass (grader v3: 904); the rest state the gold before
    other numbers ("it took 15 hours to clean 45 rooms"), which no rule on the last sentence can tell apart."""
    passed = 0
    for task in gsm8k[:1000]:
        worked = re.sub(r"<<[^<>]*>>", "", task.meta["solution"].rsplit("####", 1)[0]).strip()
        passed += _grade(task, worked).verdict == "pass"
    assert passed >= 975


@pytest.mark.parametrize("output", ["16 (not 15)", "The answer is not 15.", "It is 15 or 16", "15?"])
def test_a_fail_reason_does_not_tell_which_value_was_right(output):
    """Self-critique shows the reason with the reference withheld: the reason must read the same whether the
    value the answer ruled out (or offered) was the reference or not, or it would point at the answer."""
    from hone.critique.feedback import withhold_reference

    reasons = set()
    for reference in ("15", "17"):
        v = _grade(Task(id="t", kind="math", prompt="q", reference=reference), output)
        assert v.verdict == "fail"
        reasons.add(withhold_reference(v.reason, reference))
    assert len(reasons) == 1, reasons


@pytest.mark.parametrize("output", ["A or B", "Answer: A\nAnswer: B", "not A", "The answer is B. B is wrong."])
def test_a_choice_fail_reason_does_not_tell_which_option_was_right(choice_items, output):
    from hone.critique.feedback import withhold_reference

    task = choice_items[0]
    reasons = set()
    for reference in ("A", "B"):
        v = _grade(task.model_copy(update={"reference": reference}), output)
        assert v.verdict == "fail"
        reasons.add(withhold_reference(v.reason, reference))
    assert len(reasons) == 1, reasons
