"""`make_judge(spec)`: the one way to build a judge from a command-line spec.

    anthropic[:MODEL]          Claude through the Messages API (default model: a current Haiku);
                               with batch=True, through the Message Batches API at half price
    openai:MODEL@URL           any OpenAI-compatible server (URL ends in /v1); without @URL, OPENAI_BASE_URL
    local:DIR                  a local Hugging Face model folder
    verifier                   hone.grade's verifiers only; items they cannot decide are errors
    composite[:<llm spec>]     verifiers first, the LLM (default: anthropic) where they cannot decide
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from hone.errors import HoneError
from hone.judge.cache import JudgeCache
from hone.judge.config import DEFAULT_ANTHROPIC_MODEL, JudgeConfig, load_judge_config

SPECS = "anthropic[:MODEL] | openai:MODEL@URL | local:DIR | verifier | composite[:<llm spec>]"


def _llm_backend(spec: str, cache: JudgeCache, config: JudgeConfig, batch: bool):
    kind, _, arg = spec.partition(":")
    if kind == "anthropic":
        from hone.preflight import require_env

        require_env(("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"), f"the judge {spec!r}")
        model = arg or DEFAULT_ANTHROPIC_MODEL
        if batch:
            from hone.judge.anthropic_batch import AnthropicBatchBackend

            return AnthropicBatchBackend(model, cache, config, temperature=config.temperature)
        from hone.judge.anthropic import AnthropicBackend

        return AnthropicBackend(model, timeout=config.timeout_s, temperature=config.temperature)
    if batch:
        raise HoneError(f"--batch: only the anthropic judge has a batch API (got {spec!r})")
    if kind == "openai":
        m = re.fullmatch(r"(.+?)(?:@(https?://\S+))?", arg)
        url = (m.group(2) if m else None) or os.environ.get("OPENAI_BASE_URL")
        if not m or not url:
            raise HoneError(f"--judge {spec!r}: use openai:MODEL@URL (e.g. openai:qwen2.5-7b@http://127.0.0.1:8000/v1)"
                            " or set OPENAI_BASE_URL")
        from hone.judge.openai_compat import OpenAIBackend
        from hone.preflight import server_answers

        server_answers(url)
        return OpenAIBackend(m.group(1), url, timeout=config.timeout_s, temperature=config.temperature)
    if kind == "local":
        if not arg:
            raise HoneError("--judge local:DIR needs a model folder")
        from hone.judge.local import LocalBackend

        return LocalBackend(arg, temperature=config.temperature)
    raise HoneError(f"--judge {spec!r}: unknown judge (use {SPECS})")


def make_judge(spec: str, *, cache_path: str | os.PathLike | None = None, concurrency: int = 8,
               budget_usd: float | None = None, batch: bool = False, second_opinion: bool = False,
               config: JudgeConfig | str | os.PathLike | None = None, sandbox: str = "strict", **settings: Any):
    """Build the judge `spec` names. `settings` override fields of the judge config (e.g. `timeout_s`).

    `cache_path` is the SQLite cache + ledger (None: in memory, gone with the process). `budget_usd` caps
    everything that ledger has recorded, across runs. `sandbox` is the level the verifiers run code at.
    """
    if concurrency < 1:
        raise HoneError("--concurrency must be at least 1")
    cfg = config if isinstance(config, JudgeConfig) else load_judge_config(config)
    if settings:
        cfg = JudgeConfig.model_validate({**cfg.model_dump(), **settings})
    if spec == "verifier":
        from hone.judge.verifier import VerifierJudge

        return VerifierJudge(sandbox=sandbox)
    cache = JudgeCache(cache_path if cache_path is not None else ":memory:")
    from hone.judge.llm import LLMJudge

    composite = spec == "composite" or spec.startswith("composite:")
    llm_spec = (spec.partition(":")[2] or "anthropic") if composite else spec
    backend = _llm_backend(llm_spec, cache, cfg, batch)
    # A local model answers a batch at a time: keep one batch in flight.
    llm = LLMJudge(backend, cache, cfg, concurrency=getattr(backend, "batch_size", concurrency), budget_usd=budget_usd)
    if not composite:
        return llm
    from hone.judge.composite import CompositeJudge
    from hone.judge.verifier import VerifierJudge

    return CompositeJudge(VerifierJudge(sandbox=sandbox), llm, second_opinion=second_opinion)


def default_cache_path(run_dir: str | os.PathLike) -> Path:
    from hone.judge.cache import CACHE_FILE

    return Path(run_dir) / CACHE_FILE
