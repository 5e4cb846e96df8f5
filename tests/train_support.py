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
