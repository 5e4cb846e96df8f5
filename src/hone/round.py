"""A loop's round as a typed thing: where its files are (`RoundLayout`), what it did (`RoundRecord`), and the
run's `LoopSummary` (summary.json).

The loop writes these; `hone status`, report.md, report.html and the plots read them, and each stage's typed
report (`TrainReport`, `MergeReport`, `BenchReport`) through the paths named here. No other module spells a
round's file names. A round's `kind` says how it improved the model (hone.round_kinds): "start" for round 0,
"sft" for sampling + verified data + LoRA, "grpo" for online RL on the round's prompts with the verifiers as the
reward, and whatever a new kind registers.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from hone.atomic import write_text_atomic
from hone.bench.report import BenchReport, SuiteFigures
from hone.bench.run import BENCH_FILE, FAILURES_FILE, suite_outputs
from hone.critique.summary import CritiqueSummary
from hone.data.run import DataReport
from hone.errors import HoneError, dotted, problem
from hone.gate import GateDecision, Uplift
from hone.sample.run import SampleReport, pass_outputs

LOOP_CONFIG, SUMMARY, COMMAND = "loop_config.json", "summary.json", "command.json"


@dataclass(frozen=True)
class RoundLayout:
    """Round r's folder under a run directory, and the path of everything a round makes."""

    run_dir: Path
    round: int

    @property
    def dir(self) -> Path:
        return self.run_dir / f"round-{self.round}"

    @property
    def samples(self) -> Path:  # the sample stage's folder is the round's; its manifest is samples.jsonl's
        return self.dir / "samples.jsonl"

    def sample_pass(self, attempt: int) -> tuple[Path, Path]:
        """(answers, verdicts) of one sampling pass (hone.sample.run)."""
        return pass_outputs(self.dir, attempt)

    @property
    def verdicts(self) -> Path:
        return self.dir / "verdicts.jsonl"

    @property
    def prompts(self) -> Path:
        """The round's training prompts (Task JSONL) where its kind trains on prompts, not rows (GRPO)."""
        return self.dir / "prompts.jsonl"

    @property
    def critiques(self) -> Path:
        return self.dir / "critiques.jsonl"

    @property
    def sft(self) -> Path:
        return self.dir / "sft.jsonl"

    @property
    def dpo(self) -> Path:
        return self.dir / "dpo.jsonl"

    @property
    def adapter(self) -> Path:
        return self.dir / "adapter"

    @property
    def model(self) -> Path:
        return self.dir / "model"

    @property
    def bench(self) -> Path:
        return self.dir / "bench"

    def bench_suite(self, suite: str) -> tuple[Path, Path]:
        """(generations, verdicts) of one held-out suite (hone.bench.run)."""
        return suite_outputs(self.bench, suite)

    @property
    def bench_failures(self) -> Path:
        """The benchmark's failures (FailureRow JSONL), which the failure clusters read."""
        return self.bench / FAILURES_FILE

    @property
    def gate(self) -> Path:
        return self.dir / "gate.json"

    def gate_decision(self) -> GateDecision | None:
        """The round's typed gate.json (None: the gate has not decided yet)."""
        return _read_model(self.gate, GateDecision)

    def bench_report(self) -> BenchReport | None:
        """The round's typed bench.json (None: not benchmarked, or being written)."""
        return _read_model(self.bench / BENCH_FILE, BenchReport)

    def train_report(self):
        """The adapter's typed lineage.json (hone.train.result.TrainReport; None: not trained yet)."""
        from hone.train.result import TrainReport

        return _read_model(self.adapter / "lineage.json", TrainReport)

    def merge_report(self):
        """The merged model's typed merge_report.json (hone.merge.report.MergeReport; None: not merged yet)."""
        from hone.merge.report import MergeReport

        return _read_model(self.model / "merge_report.json", MergeReport)


def _read_model(path: Path, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate_json(path.read_text())
    except (OSError, ValueError):  # absent, or being replaced this very moment
        return None


def read_loop_config(run_dir: str | os.PathLike):
    """The loop config a run directory belongs to (loop_config.json, hone.loop_config.LoopConfig); None: none."""
    from hone.loop_config import LoopConfig

    path = Path(run_dir) / LOOP_CONFIG
    if not path.exists():
        return None
    try:
        return LoopConfig.model_validate_json(path.read_text())
    except ValueError as e:
        raise HoneError(f"{path}: not a loop config ({str(e).splitlines()[0]})") from None


def read_summary(run_dir: str | os.PathLike) -> "LoopSummary | None":
    """The run's summary.json so far (None: no round has finished yet, or it is being replaced this moment)."""
    return _read_model(Path(run_dir) / SUMMARY, LoopSummary)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def write(self, path: str | os.PathLike) -> None:
        write_text_atomic(Path(path), json.dumps(self.model_dump(mode="json"), indent=2) + "\n")


class RoundCritique(CritiqueSummary):
    """The critique stage's summary as a round keeps it (with its computed acceptance rate)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class RoundData(DataReport):
    """The training rows a round built: the data stage's report, the rows and where they came from."""

    rows: int
    source: str


class RoundRL(BaseModel):
    """What an online-RL round did (hone.round_kinds.grpo_round): the prompts it wrote and the rows it trained on,
    the optimizer steps, the reward functions (the control's with its p), the mean reward of each logged step, the
    mean share of groups whose rewards did not vary (those teach nothing), and whether any weight moved."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompts: int
    rows: int
    steps: int
    answers: int  # sampled and rewarded in training, all steps together
    rewards: list[dict[str, Any]]
    reward_curve: list[float]
    zero_variance_groups: float | None
    learned: bool


class JudgeUse(_Record):
    name: str
    calls: int
    cost_usd: float


class RoundRecord(_Record):
    """One round, as summary.json keeps it once the round is over."""

    round: int
    kind: str = "sft"
    model: str  # the promoted model after this round
    candidate: str | None = None  # the model this round trained (None: none)
    promoted: bool
    reason: str
    suites: dict[str, SuiteFigures]
    seconds: float | None = None
    train_prompts: SampleReport | None = None
    critique: RoundCritique | None = None
    data: RoundData | None = None
    rl: RoundRL | None = None
    judge: JudgeUse | None = None
    vs_previous: dict[str, dict[str, Any]] | None = None  # hone.gate.decide's paired comparison per suite
    uplift_vs_round0: dict[str, Uplift] | None = None
    win_tie_loss: dict[str, dict[str, dict[str, int]]] | None = None
    guards: dict[str, Any] | None = None  # the gate's guard suites and their tolerance (gate.trained_suites)
    stop_rates: dict[str, Any] | None = None  # the gate's stop rates before / after and tolerance (gate.stop_tolerance)

    @property
    def verifier_calls(self) -> int:
        """Answers the verifiers graded to train this round, one call each: its samples, or GRPO's rewarded ones."""
        if self.train_prompts is not None:
            return self.train_prompts.samples
        if self.rl is not None and any(f.get("name") == "verifier" for f in self.rl.rewards):
            return self.rl.answers
        return 0

    @property
    def trained(self) -> bool:
        """A round that made a candidate (round 0 is the start, a round with no rows made none)."""
        return self.round > 0 and self.candidate is not None


class LoopSummary(_Record):
    """summary.json of a loop run: its config, every finished round, the final model and the time taken."""

    description: str | None = None
    config: dict[str, Any]
    rounds: list[RoundRecord]
    final_model: str | None = None
    seconds: float | None = None

    def last_promoted(self) -> RoundRecord:
        """The round whose model the run ends with (round 0 when nothing was promoted)."""
        return next((r for r in reversed(self.rounds) if r.promoted and (r.round == 0 or r.candidate)),
                    self.rounds[0])


class DemoSummary(_Record):
    """summary.json of `hone demo`: what was run (title, model, seed, size, the base), one LoopSummary per arm, and
    the arms' final models compared on the same items (hone.bench.stats.paired_compare)."""

    title: str
    model: str = "tiny"
    seed: int
    size: str
    base: dict[str, Any]
    arms: dict[str, LoopSummary]
    verified_vs_control: dict[str, Any]
    seconds: float


def read_run(run_dir: str | os.PathLike) -> tuple[dict[str, LoopSummary], dict[str, Path], DemoSummary | None]:
    """(summary per arm, run directory per arm, the demo's summary): a `hone loop` directory is one arm, "loop"."""
    run_dir = Path(run_dir)
    path = run_dir / SUMMARY
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        raise HoneError(f"{path}: no summary (run `hone loop` or `hone demo` first)") from None
    try:
        if "arms" in raw:
            demo = DemoSummary.model_validate(raw)
            return demo.arms, {arm: run_dir / arm for arm in demo.arms}, demo
        return {"loop": LoopSummary.model_validate(raw)}, {"loop": run_dir}, None
    except ValidationError as e:
        loc, msg = problem(e)
        raise HoneError(f"{path}: `{dotted(loc)}`: {msg}") from None
