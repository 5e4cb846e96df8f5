"""Shared pieces of the judge tests: a fake provider per test, the secret key, fast retry settings, items."""

from __future__ import annotations

from pathlib import Path

import pytest

from fake_llm_server import FakeLLM
from hone.judge.config import JudgeConfig
from hone.judge.factory import JudgeSetup
from hone.records import Generation, Task

SECRET = "sk-ant-api03-TESTSECRET-never-write-me-7f3a9c"
# Short backoff and timeouts so fault tests take fractions of a second.
FAST = {"base_delay_s": 0.01, "max_delay_s": 0.05, "timeout_s": 0.5, "poll_interval_s": 0.05,
        "batch_flush_s": 0.05, "max_tokens": 256}
FAST_YAML = "".join(f"{k}: {v}\n" for k, v in FAST.items())


def fast_judge(spec: str, **setup) -> JudgeSetup:
    """The judge `spec` with FAST's settings, as the judge and calibrate stages take it."""
    return JudgeSetup(spec=spec, settings=JudgeConfig(**FAST), **setup)


@pytest.fixture
def fake(monkeypatch):
    """A fresh fake provider; the SDKs find it (and the key) through the environment, as in production."""
    with FakeLLM(key=SECRET) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        yield server


def env_for(server: FakeLLM, base: dict) -> dict:
    return {**base, "ANTHROPIC_API_KEY": SECRET, "OPENAI_API_KEY": SECRET, "ANTHROPIC_BASE_URL": server.url}


def arithmetic(n: int, wrong_every: int = 3, fault: dict[int, str] | None = None) -> list[tuple[Task, Generation]]:
    """n math items; every `wrong_every`-th answer is wrong; `fault` adds a scripted fault marker to item i."""
    items = []
    for i in range(n):
        a, b = 10 + i, 7 + 2 * i
        task = Task(id=f"add-{i}", kind="math", prompt=f"What is {a} + {b}?", reference=str(a + b),
                    meta={"category": "addition"})
        answer = a + b + (1 if i % wrong_every == wrong_every - 1 else 0)
        text = f"{a} + {b} = {answer}. The answer is {answer}."
        if fault and i in fault:
            text += f" [[fault:{fault[i]}]]"
        items.append((task, Generation(id=task.id, model="m", output=text, finish_reason="stop")))
    return items


def expected(items: list[tuple[Task, Generation]]) -> list[str]:
    return ["pass" if f" is {t.reference}." in g.output else "fail" for t, g in items]


def files_containing(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]
