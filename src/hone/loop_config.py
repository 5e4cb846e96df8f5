"""The YAML config of `hone loop`; every error names the file, line and key (hone.config)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import (BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_serializer,
                      field_validator, model_validator)

from hone.errors import HoneError
from hone.generate.registry import GenerateConfig
from hone.judge.config import JudgeConfig
from hone.judge.spec import JudgeSpec
from hone.overlap import NGRAM
from hone.train.config import GRPOTrainConfig, TrainConfig

if TYPE_CHECKING:
    from hone.bench.run import BenchResult

# `train.objective`: how each round trains (hone.round_kinds.KINDS), and the class of the `train:` section.
OBJECTIVES: dict[str, type[TrainConfig]] = {"sft": TrainConfig, "grpo": GRPOTrainConfig}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SampleConfig(_Section):
    """Sampling on the training prompts each round."""

    n: int = Field(8, ge=1)
    temperature: float = Field(1.0, gt=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(64, ge=1)
    resample_unsolved: int = Field(1, ge=0, description="extra rounds of n samples for prompts with no pass yet")
    prompts_per_round: int | None = Field(
        None, ge=1, description="fresh prompts each round, taken in order from train_tasks (wrapping around); "
        "None: every prompt every round")


class CritiqueConfig(_Section):
    samples: int = Field(1, ge=1)
    temperature: float = Field(0.7, ge=0.0)
    max_new_tokens: int = Field(512, ge=1)
    reference_guided: bool = False


class DataConfig(_Section):
    max_per_task: int | None = Field(1, ge=1, description="verified samples kept per prompt (None: all distinct)")
    replay: Path | None = Field(None, description="SFTExample JSONL of the original training set")
    replay_share: float = Field(0.0, ge=0.0, lt=1.0)
    ngram: int = Field(NGRAM, ge=2, description="n-gram size of the overlap check against held-out suites")
    dpo: bool = False


class BenchSection(_Section):
    """How the loop benchmarks each round's model (greedy, on the held-out suites)."""

    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(64, ge=1)


class LoopJudgeConfig(JudgeConfig):
    """The judge's settings in the loop: prices, limits, retries (as `hone judge --config`), calls in flight, and
    the budget, which caps the run directory's judge ledger across rounds and resumes."""

    concurrency: int = Field(8, ge=1, description="judge calls in flight")
    budget_usd: float | None = Field(None, ge=0, description="stop before the run's judge spending passes this; "
                                     "an LLM judge that costs money needs it (write null to run without a cap)")

    # How fast or how far the judge may go, not what it answers: a run may resume with other values.
    RESUMABLE: ClassVar[frozenset[str]] = frozenset({
        "budget_usd", "concurrency", "rpm", "tpm", "timeout_s", "max_attempts", "base_delay_s", "max_delay_s",
        "poll_interval_s", "batch_max_requests", "batch_flush_s", "prices", "batch_discount"})

    def settings(self) -> JudgeConfig:
        return JudgeConfig.model_validate(self.model_dump(exclude={"concurrency", "budget_usd"}))


class GateConfig(_Section):
    tolerance: float = Field(0.0, ge=0.0, le=1.0, description="largest accuracy drop (fraction) allowed per suite")
    require_gain: bool = Field(False, description="also refuse a round that improves no suite")
    trained_suites: list[str] | None = Field(
        None, description="held-out suites that measure the trained skill; the others are guards (guard_tolerance) "
        "and never count as the gain. None: every suite is trained")
    guard_tolerance: float | None = Field(None, ge=0.0, le=1.0, description="largest drop on a guard suite (None: "
                                          "tolerance)")
    stop_tolerance: float | None = Field(None, ge=0.0, le=1.0, description="largest fall of a suite's stop rate "
                                         "(answers that end their turn); None: not checked")

    def decide(self, before: BenchResult, after: BenchResult) -> dict[str, Any]:
        """hone.gate.decide with these settings, on two benchmarks of the same held-out items."""
        from hone.gate import decide

        return decide(before.correct, after.correct, self.tolerance, self.require_gain,
                      trained=None if self.trained_suites is None else set(self.trained_suites),
                      guard_tolerance=self.guard_tolerance, stop_tolerance=self.stop_tolerance or 0.0,
                      stop_rates=None if self.stop_tolerance is None else (before.stop_rates(), after.stop_rates()))


def _refuse(loc: tuple[str, ...], message: str) -> None:
    """A refusal of the whole config's validator, at the key it is about (so the error names its line)."""
    from pydantic_core import PydanticCustomError

    raise ValidationError.from_exception_data("LoopConfig", [
        {"type": PydanticCustomError("loop_config", message), "loc": loc, "input": None}])


class _Objective(_Section):
    objective: Literal["sft", "grpo"] = "sft"


def _located(e: ValidationError, *where: str | int) -> ValidationError:
    """The errors of a section validated apart, at their place in the whole config (so the line is found)."""
    return ValidationError.from_exception_data(e.title, [
        {"type": err["type"], "loc": (*where, *err["loc"]), "input": err["input"],
         **({"ctx": err["ctx"]} if "ctx" in err else {})} for err in e.errors()])


class LoopConfig(_Section):
    description: str | None = Field(None, description="one line for the report")
    base_model: Path
    train_tasks: Path
    heldout: dict[str, Path] = Field(min_length=1, description="suite name -> Task JSONL never trained on")
    rounds: int = Field(2, ge=1)
    judge: str = "verifier"
    judge_config: LoopJudgeConfig = LoopJudgeConfig()
    improve: Literal["resample", "critique", "both"] = "resample"
    control: Literal["none", "unverified", "random-reward"] = Field(
        "none", description="a control arm. 'unverified' (sft): training on its own samples without verification; "
        "'random-reward' (grpo): a Bernoulli reward at train.random_reward_p, by default round 0's pass rate on the "
        "trained suites")
    seed: int = 0
    device: str | None = None
    sandbox: Literal["strict", "weak"] = Field(
        "strict", description="code tasks: 'strict' refuses to run model-written code without full isolation "
        "(root with bwrap); 'weak' accepts what the machine allows (docs/sandbox.md)")
    generate: GenerateConfig = GenerateConfig()
    sample: SampleConfig = SampleConfig()
    critique: CritiqueConfig = CritiqueConfig()
    data: DataConfig = DataConfig()
    train: SerializeAsAny[TrainConfig] = Field(TrainConfig(method="lora"), description="how a round trains: "
                                               "`objective: sft` (the default) or `grpo`, and the trainer's settings")
    bench: BenchSection = BenchSection()
    gate: GateConfig = GateConfig()

    @model_validator(mode="wrap")
    @classmethod
    def _train_objective(cls, data: Any, handler: Any) -> "LoopConfig":
        """`train.objective` picks the `train:` section's settings class (OBJECTIVES); an omitted one is sft, so
        SFT configs (and their fingerprints) are what they always were."""
        train = data.get("train") if isinstance(data, dict) else None
        if isinstance(train, dict) and "objective" in train:
            train = dict(train)
            try:
                section = OBJECTIVES[_Objective(objective=train.pop("objective")).objective]
                data = {**data, "train": section.model_validate(train)}
            except ValidationError as e:
                raise _located(e, "train") from None
        return handler(data)

    @field_serializer("train", mode="wrap")
    def _dump_objective(self, train: TrainConfig, handler: Any) -> dict[str, Any]:
        out = handler(train)
        return out if self.round_kind == "sft" else {"objective": self.round_kind, **out}

    @field_validator("judge")
    @classmethod
    def _known_judge(cls, value: str) -> str:
        try:
            JudgeSpec.parse(value)
        except HoneError as e:
            raise ValueError(str(e).removeprefix("--judge ")) from None
        return value

    @cached_property
    def judge_spec(self) -> JudgeSpec:
        """`judge`, parsed (what the judge stage and the judge factory take)."""
        return JudgeSpec.parse(self.judge)

    def judge_setup(self, run_dir: Path | None):
        """The loop's judge as the stages take it (hone.judge.factory.JudgeSetup); its cache + ledger in `run_dir`."""
        from hone.judge.factory import JudgeSetup

        jc = self.judge_config
        return JudgeSetup(spec=self.judge_spec, settings=jc.settings(), concurrency=jc.concurrency,
                          budget_usd=jc.budget_usd, sandbox=self.sandbox, run_dir=run_dir)

    @property
    def round_kind(self) -> str:
        """How each round improves the model (`train.objective`, a key of hone.round_kinds.KINDS)."""
        return next(name for name, section in OBJECTIVES.items() if type(self.train) is section)

    @model_validator(mode="after")
    def _check(self) -> "LoopConfig":
        jc = self.judge_config
        try:
            self.judge_spec.require_budget(jc.budget_usd, "budget_usd" in jc.model_fields_set,
                                           "set a cap in USD (e.g. budget_usd: 20)", "write `budget_usd: null`")
        except HoneError as e:
            raise ValueError(f"judge_config.budget_usd: {e}") from None
        if self.control == "unverified" and self.improve != "resample":
            raise ValueError("the unverified control arm only applies to improve: resample")
        if self.generate.backend == "openai":
            raise ValueError("generate.backend openai talks to one fixed served model, and the loop makes a new "
                             "model every round: use backend server (Hone starts a server for each model)")
        if self.train.method != "lora":
            raise ValueError("the loop trains LoRA adapters and merges them with proof (train.method: lora)")
        grpo = isinstance(self.train, GRPOTrainConfig)
        if self.control == "random-reward" and not grpo:
            _refuse(("control",), "random-reward is GRPO's control arm: it needs train.objective: grpo (sft rounds' "
                    "control is control: unverified)")
        if grpo:
            if self.control == "unverified":
                _refuse(("control",), "unverified is the sft rounds' control arm; with train.objective: grpo use "
                        "control: random-reward")
            if self.train.reward == "random" and self.control != "random-reward":
                _refuse(("train", "reward"), "random is the random-reward control arm: write control: random-reward")
            if self.improve != "resample":
                _refuse(("improve",), "critique and both make sft rounds' data; a grpo round (train.objective: grpo) "
                        "learns from its own rewarded samples")
            if "sandbox" in self.train.model_fields_set and self.train.sandbox != self.sandbox:
                _refuse(("train", "sandbox"), "a loop grades rewards in the loop's sandbox: set `sandbox` instead")
        unknown = sorted(set(self.gate.trained_suites or ()) - set(self.heldout))
        if unknown:
            _refuse(("gate", "trained_suites"), f"{', '.join(map(repr, unknown))} is not a held-out suite (heldout "
                    f"has {', '.join(map(repr, sorted(self.heldout)))})")
        if self.gate.guard_tolerance is not None and self.gate.trained_suites is None:
            _refuse(("gate", "guard_tolerance"), "applies to guard suites: name the trained ones in "
                    "gate.trained_suites")
        return self

    def resolve(self, root: Path) -> "LoopConfig":
        """Paths relative to the config file's folder."""
        def fix(p: Path | None) -> Path | None:
            return p if p is None or p.is_absolute() else root / p

        return self.model_copy(update={
            "base_model": fix(self.base_model), "train_tasks": fix(self.train_tasks),
            "heldout": {k: fix(v) for k, v in self.heldout.items()},
            "data": self.data.model_copy(update={"replay": fix(self.data.replay)}),
            "train": self.train.model_copy(update={"accelerate_config": fix(self.train.accelerate_config)}),
        })
