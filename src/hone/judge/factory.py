"""`make_judge(spec)`: the one way to build a judge from a judge spec (hone.judge.spec, parsed once).

    anthropic[:MODEL]          Claude through the Messages API (default model: a current Haiku);
                               with batch=True, through the Message Batches API at half price
    openai:MODEL@URL           any OpenAI-compatible server (URL ends in /v1); without @URL, OPENAI_BASE_URL
    local:DIR                  a local Hugging Face model folder
    verifier                   hone.grade's verifiers only; items they cannot decide are errors
    composite[:<llm spec>]     verifiers first, the LLM (default: anthropic) where they cannot decide

LLM backends come from hone.judge.registry (one module each); the cache, ledger, budget, limits and retries are
layers the LLM judge puts around whichever backend the spec names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from hone.errors import HoneError
from hone.judge.cache import JudgeCache
from hone.judge.config import JudgeConfig, load_judge_config
from hone.judge.registry import BackendContext, open_backend
from hone.judge.spec import JudgeSpec


def make_judge(spec: JudgeSpec | str, *, cache_path: str | os.PathLike | None = None, concurrency: int = 8,
               budget_usd: float | None = None, batch: bool = False, second_opinion: bool = False,
               config: JudgeConfig | str | os.PathLike | None = None, sandbox: str = "strict", **settings: Any):
    """Build the judge `spec` names. `settings` override fields of the judge config (e.g. `timeout_s`).

    `cache_path` is the SQLite cache + ledger (None: in memory, gone with the process); a batch backend keeps
    its batches in the same file. `budget_usd` caps everything that ledger has recorded, across runs.
    `sandbox` is the level the verifiers run code at.
    """
    if concurrency < 1:
        raise HoneError("--concurrency must be at least 1")
    spec = JudgeSpec.parse(spec)
    cfg = config if isinstance(config, JudgeConfig) else load_judge_config(config)
    if settings:
        cfg = JudgeConfig.model_validate({**cfg.model_dump(), **settings})
    if spec.backend is None:
        from hone.judge.verifier import VerifierJudge

        return VerifierJudge(sandbox=sandbox)
    store = cache_path if cache_path is not None else ":memory:"
    cache = JudgeCache(store)
    from hone.judge.llm import LLMJudge

    backend = open_backend(spec.backend, spec.arg, BackendContext(cfg, store), batch=batch)
    # A local model answers a batch at a time: keep one batch in flight.
    llm = LLMJudge(backend, cache, cfg, concurrency=getattr(backend, "batch_size", concurrency), budget_usd=budget_usd)
    if not spec.verifiers:
        return llm
    from hone.judge.composite import CompositeJudge
    from hone.judge.verifier import VerifierJudge

    return CompositeJudge(VerifierJudge(sandbox=sandbox), llm, second_opinion=second_opinion)


def default_cache_path(run_dir: str | os.PathLike) -> Path:
    from hone.judge.cache import CACHE_FILE

    return Path(run_dir) / CACHE_FILE


class JudgeSetup(BaseModel):
    """Which judge, and how it is called: its settings (prices, limits, retries), calls in flight, the budget,
    the level the verifiers run code at, and where its cache + ledger live (None: the stage's output folder).
    What the judge, calibrate and critique stages share."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: JudgeSpec
    settings: JudgeConfig = JudgeConfig()
    concurrency: int = 8
    budget_usd: float | None = None
    sandbox: str = "strict"
    run_dir: Path | None = None

    @field_validator("spec", mode="before")
    @classmethod
    def _parse(cls, value: JudgeSpec | str) -> JudgeSpec:
        return JudgeSpec.parse(value)

    def make(self, cache_dir: str | os.PathLike | None, **options: Any):
        """The judge, its cache in `run_dir` (else `cache_dir`; both None: in memory); `options` as make_judge's."""
        where = self.run_dir or cache_dir
        return make_judge(self.spec, cache_path=default_cache_path(where) if where is not None else None,
                          concurrency=self.concurrency, budget_usd=self.budget_usd, config=self.settings,
                          sandbox=self.sandbox, **options)
