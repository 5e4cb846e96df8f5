"""LLM judges and verifiers behind one protocol; fail-closed, concurrent, cached and costed.

    judge = make_judge("anthropic:claude-haiku-5-5", cache_path=run_dir / "judge_cache.sqlite")
    verdicts = judge_all(judge, [(task, generation), ...])
"""

from hone.judge.driver import compare_all, judge_all
from hone.judge.factory import make_judge

__all__ = ["make_judge", "judge_all", "compare_all"]
