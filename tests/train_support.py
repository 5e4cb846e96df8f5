"""Helpers shared by the train and merge tests: small local data sets and a one-thread torch setting."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Iterable

import pytest


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def parity_rows(numbers: Iterable[int]) -> list[dict]:
    return [{"prompt": f"Is {n} even?", "completion": "yes" if n % 2 == 0 else "no"} for n in numbers]


def addition_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(10, 49), rng.randint(10, 49)
        rows.append({"prompt": f"{a}+{b}=", "completion": str(a + b)})
    return rows


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Models this small gain little from a second thread, and run ~10x slower when another process holds the
    cores (the threads spin-wait on each other), so these tests take the same time on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sum_tasks() -> list:
    """One-digit sums as math tasks: what the answering model (answering_model_at) answers, right some of the time."""
    from hone.records import Task

    return [Task(id=f"sum-{a}-{b}", kind="math", prompt=f"What is {a} + {b}?", reference=str(a + b))
            for a in range(5) for b in range(5)]


def answering_model_at(tiny_model_dir: Path, out: Path) -> Path:
    """The tiny model after a short SFT on one-digit sums: it answers with a digit and stops, right some of the
    time, so a GRPO group's rewards vary."""
    from hone.train.config import TrainConfig
    from hone.train.sft import run_train

    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    pairs = [(rng.randint(0, 4), rng.randint(0, 4)) for _ in range(400)]
    data = write_jsonl(out / "sums.jsonl", [{"prompt": f"What is {a} + {b}?", "completion": str(a + b)}
                                            for a, b in pairs])
    cfg = TrainConfig(method="full", learning_rate=1e-3, per_device_batch_size=16, max_steps=50)
    return run_train(cfg, data, tiny_model_dir, out / "model").folder
