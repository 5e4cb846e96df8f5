"""Reward functions for online RL (GRPO): Hone's verifiers, and the random-reward control.

TRL calls a reward function as `f(prompts=, completions=, completion_ids=, **dataset_columns)` and takes one
float (or None: unscorable, no gradient) per completion. Each dataset row carries its Task record as JSON in the
`task` column (hone.train.grpo), so the reward is the verdict `hone.grade.verify_many` gives the answer bench
would record from the same tokens (`hone.chat.decode_answer`): 1.0 pass, 0.0 fail, None for a grader error and
for open tasks (no verifier; the LLM judge is not wired in as a reward yet).
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Any, Literal

from hone.chat import decode_answer
from hone.records import Generation, Task

TASK_COLUMN = "task"
POLICY = "policy"  # the Generation.model of an answer sampled inside training


@lru_cache(maxsize=65536)
def _task(record: str) -> Task:
    return Task.model_validate_json(record)


class VerifierReward:
    """The verifier's score of each completion: math (math-verify), code (unit tests in the sandbox, `workers`
    in parallel), choice. `calls` and `last` (the (task, generation) pairs of the last call) are for inspection."""

    __name__ = "verifier"

    def __init__(self, tokenizer: Any, workers: int | None = None, sandbox: Literal["strict", "weak"] = "strict"):
        self.tokenizer = tokenizer
        self.workers = workers
        self.sandbox = sandbox
        self.calls = 0
        self.last: list[tuple[Task, Generation]] = []

    def __call__(self, prompts: list, completions: list, completion_ids: list[list[int]], **columns: Any
                 ) -> list[float | None]:
        from hone import grade

        items = []
        for i, (record, ids) in enumerate(zip(columns[TASK_COLUMN], completion_ids)):
            task = _task(record)
            answer = decode_answer(self.tokenizer, ids)
            items.append((task, Generation(id=task.id, sample=i, model=POLICY, output=answer.text,
                                           finish_reason="stop" if answer.stopped else "length",
                                           tokens=answer.tokens)))
        self.calls += 1
        self.last = items
        verdicts = grade.verify_many(items, workers=self.workers, sandbox=self.sandbox)
        return [None if v is None else v.score for v in verdicts]


class RandomReward:
    """The random-reward control ("Spurious Rewards", arXiv 2506.10947): 1.0 with probability `p`, else 0.0,
    whatever the answer says. Drawn from (seed, step, position, task id), so a resumed run draws the same."""

    __name__ = "random_reward"

    def __init__(self, p: float, seed: int):
        self.p = p
        self.seed = seed

    def __call__(self, prompts: list, completions: list, completion_ids: list[list[int]], **columns: Any
                 ) -> list[float]:
        state = columns.get("trainer_state")
        step = state.global_step if state is not None else 0
        return [float(random.Random(f"{self.seed}:{step}:{i}:{_task(record).id}").random() < self.p)
                for i, record in enumerate(columns[TASK_COLUMN])]


def reward_lineage(functions: list[Any]) -> dict[str, Any]:
    """What a lineage (and the run's fingerprint) records of the rewards: their names and settings, and the
    versions of the graders behind them."""
    from hone.grade import grader_versions

    described = []
    for f in functions:
        entry: dict[str, Any] = {"name": f.__name__}
        if isinstance(f, RandomReward):
            entry.update(p=f.p, seed=f.seed)
        if isinstance(f, VerifierReward):
            entry.update(sandbox=f.sandbox)
        described.append(entry)
    return {"functions": described, "graders": grader_versions()}
