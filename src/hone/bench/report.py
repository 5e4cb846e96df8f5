"""`bench.json`, typed: what the bench stage measured per suite. `BenchReport.to_json()` is the file's content.

Optional parts (a reference's figures, pass@k, the sandbox line) are absent from the file when absent from the
run, exactly as `hone.bench.summary` builds them; `hone report` and `hone status` read the file.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hone.grade.gap import ScorerGap


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Accuracy(_Part):
    """Counts, accuracy with its 95% CI, and pass@k when there are several samples (`summary.accuracy_block`)."""

    tasks: int
    graded_tasks: int
    answers: int
    passed: int = Field(alias="pass")
    fail: int
    error: int
    timeouts: int
    accuracy: float | None
    ci95: list[float] | None
    ci_method: str | None = None
    pass_at_k: dict[str, float] | None = None


class SuiteFigures(BaseModel):
    """A suite's headline figures, as a loop round records them: accuracy, its 95% CI, graded items, correct and
    error counts. (A new figure of the bench, e.g. a second grader's, is one more optional field here.)"""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accuracy: float | None
    ci: list[float] | None
    n: int
    correct: int = 0
    errors: int = 0
    stop_rate: float | None = None  # share of answers that ended their turn (None: none generated, or not kept)
    scorer_gap: float | None = None  # share of answers where the verifier and the strict second reading disagree

    @classmethod
    def of(cls, suite: "SuiteReport") -> "SuiteFigures":
        acc = suite.accuracy
        return cls(accuracy=acc.accuracy, ci=acc.ci95, n=acc.graded_tasks, correct=acc.passed, errors=acc.error,
                   stop_rate=suite.stop_rate, scorer_gap=suite.scorer_gap.share if suite.scorer_gap else None)


class GroundTruth(_Part):
    """Win / tie / loss against the reference on tasks with ground truth, and the paired test."""

    win: int
    tie: int
    loss: int
    not_compared: list[dict[str, str]]
    missing_in_reference: list[str]
    paired: dict[str, Any]  # hone.bench.stats.paired_compare


class OpenComparison(_Part):
    """Open tasks judged pairwise against the reference (all `not_compared` without a judge)."""

    tasks: int
    judge: str | None
    win: int
    tie: int
    loss: int
    error: int
    not_compared: int


class Comparison(_Part):
    ground_truth: GroundTruth
    open: OpenComparison


class SuiteReport(_Part):
    path: str
    sha256: str
    accuracy: Accuracy
    categories: dict[str, Accuracy]
    open_tasks: int
    warnings: list[str]
    reference_accuracy: Accuracy | None = None
    comparison: Comparison | None = None
    scorer_gap: ScorerGap | None = None  # verifier vs the strict second reading, where that reading applies
    stop_rate: float | None = None  # share of generated answers that ended their turn (the gate's stop-rate guard)


class SuiteContamination(_Part):
    tasks: int
    contaminated: list[dict[str, Any]]  # {"id", "overlap"} at or above `flag_at`
    overlapping: list[dict[str, Any]]


class Contamination(_Part):
    """N-gram overlap of every suite with the training files (`hone.bench.suites.contamination`)."""

    train_files: list[str]
    ngram: int
    flag_at: float
    suites: dict[str, SuiteContamination]

    def flagged(self) -> int:
        return sum(len(s.contaminated) for s in self.suites.values())


class BenchReport(_Part):
    model: str
    params: dict[str, Any]
    reference: str | None
    suites: dict[str, SuiteReport]
    contamination: Contamination | None
    versions: dict[str, str]
    sandbox: str | None = None

    def figures(self) -> dict[str, SuiteFigures]:
        """Per suite: the headline figures a loop round reports."""
        return {name: SuiteFigures.of(s) for name, s in self.suites.items()}

    def to_json(self) -> dict[str, Any]:
        """bench.json's content: the parts this run has, in the order they were always written."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)
