"""What a training run returns: the folder it wrote and its lineage, typed (`lineage.json` as `TrainReport`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from hone.errors import HoneError, dotted, problem
from hone.stage_contract import StageResult

TRAIN_LOG = "train_log.json"  # the trainer's logged history (loss, reward, ...), one row per logged step


class TrainingFigures(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int
    device: str
    processes: int
    first_loss: float | None
    final_loss: float | None
    mean_loss: float | None
    runtime_s: float | None
    tokens: int | None
    resumed_from: str | None


class TrainReport(BaseModel):
    """The lineage of a trained adapter or model: which base, data and settings made it, and how training went."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["adapter", "model"]
    objective: str
    base: dict[str, Any]  # path, weights_sha256, architecture, dtypes, quantization, origin
    data: dict[str, Any]  # path, sha256, and the objective's row counts (examples, dropped, ...)
    config: dict[str, Any]
    fingerprint: dict[str, Any]
    training: TrainingFigures
    versions: dict[str, str]
    created: str
    # online RL: reward functions, grader versions, the reward curve (hone.train.rewards, hone.train.trainer)
    rewards: dict[str, Any] | None = None

    def summary(self) -> str:
        """"12 steps, loss 2.301 -> 0.412, 5120 tokens/s" (GRPO: the reward instead of the loss): what a person
        wants to see after training."""
        t = self.training
        speed = f", {t.tokens / t.runtime_s:.0f} tokens/s" if t.tokens and t.runtime_s else ""
        loss = f", loss {t.first_loss:.3f} -> {t.final_loss:.3f}" if t.first_loss is not None else ""
        if self.rewards and self.rewards.get("first_reward") is not None:  # online RL: the reward says more
            loss = f", reward {self.rewards['first_reward']:.3f} -> {self.rewards['final_reward']:.3f}"
        return f"{t.steps} steps{loss}{speed}"


class TrainResult(StageResult):
    """outputs: {"adapter": folder} for LoRA, {"model": folder} for full training; counts: rows, steps."""

    report: TrainReport

    @property
    def folder(self) -> Path:
        return self.outputs[self.report.kind]

    def reward_curve(self) -> list[float]:
        """The mean reward of each logged step (online RL), in order; empty for objectives without a reward."""
        import json

        log = json.loads((self.folder / TRAIN_LOG).read_text())
        return [row["reward"] for row in log if row.get("reward") is not None]

    @classmethod
    def read(cls, out: Path, skipped: bool) -> "TrainResult":
        """The result a finished training folder holds, from its lineage.json."""
        from hone.models.lineage import LINEAGE_FILE, read_lineage

        try:
            report = TrainReport.model_validate(read_lineage(out))
        except ValidationError as e:
            loc, msg = problem(e)
            raise HoneError(f"{out / LINEAGE_FILE}: `{dotted(loc)}`: {msg}") from None
        return cls(outputs={report.kind: out}, counts={"rows": int(report.data.get("examples", 0)),
                                                        "steps": report.training.steps},
                   skipped=skipped, report=report)
