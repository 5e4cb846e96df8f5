"""The one shape every stage has: `run_<stage>(config: <Stage>Config, <inputs>) -> <Stage>Result`.

A stage's config is a frozen pydantic model (its settings: what goes into the fingerprint, plus how this run
treats earlier output); its result says where the outputs are, how many items of each kind it produced,
whether it was skipped (the same fingerprint was already complete), and its typed report. The CLI command
and the loop both call the same function and read the same result, so nothing is re-read from disk by a
naming convention.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field


# `progress(todo, done)` is called once the stage knows how many items it has left; it returns `advance(n)`.
ProgressFactory = Callable[[int, int], Callable[[int], None]]
# A stage of several steps (sample, bench) opens one progress per step: `progress(step, note)` returns that step's
# ProgressFactory (closed after the step if it has `close()`); `note()`, if given, is text the step offers for its
# bar (new tokens/s, judge spend). `hone.progress.stage_bar` itself is one.
StepProgress = Callable[[str, "Callable[[], str] | None"], ProgressFactory]


class StageConfig(BaseModel):
    """Settings of one stage. `restart` / `overwrite` say how this run treats earlier output (`hone.runs.Stage`);
    they are not part of the fingerprint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    restart: bool = False
    overwrite: bool = False

    def fingerprint(self) -> dict:
        """The settings that decide the output (everything but how earlier output is treated)."""
        return self.model_dump(mode="json", exclude={"restart", "overwrite"})


class StageResult(BaseModel):
    """What a stage made. Subclasses add the stage's records and its typed report."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    outputs: dict[str, Path] = Field(default_factory=dict)  # role -> path, e.g. {"verdicts": ...}
    counts: dict[str, int] = Field(default_factory=dict)  # e.g. {"items": 200, "pass": 31, "errors": 0}
    skipped: bool = False  # the same fingerprint was already complete: nothing was recomputed
