"""A synthetic task family for the offline demo: two-step arithmetic questions in chat format.

Train and held-out splits are disjoint by construction (different operand triples and prompt texts), so an
uplift on the held-out split cannot come from having trained on it.
"""

from __future__ import annotations

import random

from hone.records import Message, SFTExample, Task

_TEMPLATES = (
    "What is {a} + {b} - {c}?",
    "Compute {a} + {b} - {c}.",
    "Calculate {a} plus {b} minus {c}.",
)


def _triples(seed: int, count: int) -> list[tuple[int, int, int, int]]:
    rng = random.Random(seed)
    seen: set[tuple[int, int, int]] = set()
    out = []
    while len(out) < count:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        c = rng.randint(10, min(99, a + b))
        if (a, b, c) in seen:
            continue
        seen.add((a, b, c))
        out.append((a, b, c, rng.randrange(len(_TEMPLATES))))
    return out


def arithmetic_splits(seed: int, n_pretrain: int, n_train: int, n_heldout: int) -> dict[str, list[Task]]:
    """Disjoint `pretrain` (supervised start), `train` (the loop's prompts) and `heldout` (bench only) tasks."""
    triples = _triples(seed, n_pretrain + n_train + n_heldout)
    tasks = [
        Task(id=f"arith-{a}-{b}-{c}-{t}", kind="math", prompt=_TEMPLATES[t].format(a=a, b=b, c=c),
             reference=str(a + b - c), meta={"category": "add-sub", "operands": [a, b, c]})
        for a, b, c, t in triples
    ]
    return {
        "pretrain": tasks[:n_pretrain],
        "train": tasks[n_pretrain : n_pretrain + n_train],
        "heldout": tasks[n_pretrain + n_train :],
    }


def worked_answer(task: Task) -> str:
    """The reference answer written the way the demo model is taught to answer."""
    return f"The answer is {task.reference}."


def supervised_examples(tasks: list[Task]) -> list[SFTExample]:
    return [
        SFTExample(id=t.id, source="seed",
                   messages=[Message(role="user", content=t.prompt or ""),
                             Message(role="assistant", content=worked_answer(t))],
                   lineage={"task_id": t.id, "origin": "synthetic reference"})
        for t in tasks
    ]



def add_sub_splits(seed: int, n_train: int, n_heldout: int) -> dict[str, list[Task]]:
    """Disjoint `train` and `heldout` sums and differences of two-digit numbers, asked for a bare number (a
    pretrained chat model's task family). `a + b` and `b + a` count as one problem, so no held-out problem is a
    training problem reordered; a difference never goes below zero."""
    rng = random.Random(seed)
    seen: set[tuple[str, int, int]] = set()
    tasks = []
    while len(tasks) < n_train + n_heldout:
        op = rng.choice("+-")
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        a, b = (a, b) if op == "+" else (max(a, b), min(a, b))
        key = (op, min(a, b), max(a, b)) if op == "+" else (op, a, b)
        if key in seen:
            continue
        seen.add(key)
        tasks.append(Task(id=f"{'add' if op == '+' else 'sub'}-{a}-{b}", kind="math",
                          prompt=f"What is {a} {op} {b}? Answer with just the number.",
                          reference=str(a + b if op == "+" else a - b),
                          meta={"category": "addition" if op == "+" else "subtraction", "operands": [a, b]}))
    return {"train": tasks[:n_train], "heldout": tasks[n_train:]}
