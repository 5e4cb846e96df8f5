"""`hone loop` with an LLM judge spends no more than its budget, and resumes after the budget is raised (issue 15).

The judge is the real Anthropic SDK against a local server speaking the Messages API (tests/fake_llm_server.py);
the model is the small demo's base. Nothing is paid twice: the re-run reads every answer it paid for from the
run's SQLite cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from judge_support import FAST, fake  # noqa: F401 - a fixture

from hone.config import validate_config
from hone.errors import HoneError
from hone.judge.cache import JudgeCache
from hone.judge.factory import default_cache_path
from hone.loop import run_loop
from hone.loop_config import LoopConfig

pytestmark = pytest.mark.slow
JUDGE = "anthropic:claude-haiku-4-5"  # $1 / $5 per million tokens in the default price table


def _config(demo_run: Path, tmp_path: Path, **judge_config) -> LoopConfig:
    raw = yaml.safe_load((demo_run / "verified" / "loop.yaml").read_text())
    raw.update(rounds=1, judge=JUDGE, judge_config={**FAST, "concurrency": 4, **judge_config})
    raw["sample"].update(resample_unsolved=0)
    path = tmp_path / "loop.yaml"
    path.write_text(yaml.safe_dump(raw))
    return validate_config(yaml.safe_load(path.read_text()), LoopConfig, path)


def _spent(run: Path) -> dict:
    cache = JudgeCache(default_cache_path(run))
    try:
        return cache.totals()
    finally:
        cache.close()


def test_an_llm_judge_needs_a_budget_or_an_explicit_null(demo_run, tmp_path):
    raw = yaml.safe_load((demo_run / "verified" / "loop.yaml").read_text())
    raw.update(judge=JUDGE)
    path = tmp_path / "loop.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(HoneError, match=r"judge_config.budget_usd: the judge .* costs money.*budget_usd: null"):
        validate_config(yaml.safe_load(path.read_text()), LoopConfig, path)
    raw["judge_config"] = {"budget_usd": None}
    path.write_text(yaml.safe_dump(raw))
    assert validate_config(yaml.safe_load(path.read_text()), LoopConfig, path).judge_config.budget_usd is None
    raw.update(judge="local:/some/model", judge_config={})
    path.write_text(yaml.safe_dump(raw))
    validate_config(yaml.safe_load(path.read_text()), LoopConfig, path)  # a local judge costs nothing


def test_the_loop_stops_at_the_budget_and_resumes_when_it_is_raised(demo_run, tmp_path, fake):
    run = tmp_path / "run"
    budget = 0.02
    with pytest.raises(HoneError, match="items ended in errors a re-run may fix"):
        run_loop(_config(demo_run, tmp_path, budget_usd=budget), run, say=lambda m: None)
    first = _spent(run)
    paid_first = sum(fake.paid.values())
    assert 0 < first["usd"] <= budget and first["calls"] == paid_first
    assert paid_first < 80  # 40 prompts x 2 samples: the cap stopped it part way

    summary = run_loop(_config(demo_run, tmp_path, budget_usd=5.0), run, say=lambda m: None).model_dump(mode="json")
    assert [r["round"] for r in summary["rounds"]] == [0, 1]
    total = _spent(run)
    assert total["calls"] == sum(fake.paid.values()) == 80  # every item paid exactly once across both runs
    assert total["usd"] <= 5.0
