"""`hone judge calibrate`: how often the LLM judge agrees with the verifiers where both can judge.

On items a verifier decides (math, code), the LLM judge grades the same answers blind to the verifier's
verdict. The report gives agreement, Cohen's kappa, the confusion matrix, how often the LLM passes what the
verifier failed (the costly mistake) and the other way round, its errors, and the disagreeing items.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any, Callable

from hone.atomic import write_text_atomic
from hone.errors import HoneError
from hone.judge.driver import grade_jobs, run_jobs
from hone.judge.factory import default_cache_path, make_judge
from hone.judge.llm import LLMJudge
from hone.judge.run import read_generations
from hone.judge.verifier import VerifierJudge
from hone.records import Verdict, read_tasks


def agreement(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Statistics of (verifier, llm) verdict pairs; the verifier says only pass / fail, the LLM may say error."""
    confusion = {v: {o: 0 for o in ("pass", "fail", "error")} for v in ("pass", "fail")}
    for v, o in pairs:
        confusion[v][o] += 1
    decided = [(v, o) for v, o in pairs if o != "error"]
    n = len(decided)
    po = sum(v == o for v, o in decided) / n if n else None
    kappa = None
    if n:
        pv, po_llm = sum(v == "pass" for v, _ in decided) / n, sum(o == "pass" for _, o in decided) / n
        pe = pv * po_llm + (1 - pv) * (1 - po_llm)
        kappa = (po - pe) / (1 - pe) if pe < 1 else (1.0 if po == 1 else 0.0)
    verifier_fail, verifier_pass = confusion["fail"], confusion["pass"]
    return {
        "items": len(pairs), "both_decided": n, "agreement": po, "cohen_kappa": kappa, "confusion": confusion,
        "llm_errors": confusion["pass"]["error"] + confusion["fail"]["error"],
        "false_pass_rate": (verifier_fail["pass"] / (verifier_fail["pass"] + verifier_fail["fail"])
                            if verifier_fail["pass"] + verifier_fail["fail"] else None),
        "false_fail_rate": (verifier_pass["fail"] / (verifier_pass["pass"] + verifier_pass["fail"])
                            if verifier_pass["pass"] + verifier_pass["fail"] else None),
    }


def run_calibrate(tasks_path: str | os.PathLike, generations_path: str | os.PathLike, out_path: str | os.PathLike,
                  judge_spec: str, *, concurrency: int = 8, budget_usd: float | None = None,
                  run_dir: str | os.PathLike | None = None, config: Any = None,
                  progress_factory: Callable[[int, int], Callable[[int], None]] | None = None,
                  sandbox: str = "strict", **settings: Any) -> dict[str, Any]:
    out = Path(out_path)
    task_list = read_tasks(tasks_path)
    tasks = {t.id: t for t in task_list}
    gens = [g for g in read_generations(generations_path, tasks, tasks_path) if tasks[g.id].kind in ("math", "code")]
    if not gens:
        raise HoneError(f"{tasks_path}: no math or code tasks, so no verifier can decide any item to compare with")
    judge = make_judge(judge_spec, cache_path=default_cache_path(run_dir or out.parent), concurrency=concurrency,
                       budget_usd=budget_usd, config=config, **settings)
    if not isinstance(judge, LLMJudge):
        raise HoneError(f"--judge {judge_spec!r}: calibrate measures an LLM judge (anthropic, openai or local)")
    from hone.grade.sandbox import require_for

    require_for([tasks[g.id] for g in gens], sandbox)
    verifier = VerifierJudge(sandbox=sandbox)
    items = [(tasks[g.id], g) for g in gens]
    progress = progress_factory(2 * len(items), 0) if progress_factory else None

    async def main() -> tuple[list[Verdict], list[Verdict]]:
        truth = await run_jobs(verifier, grade_jobs(verifier, items), progress=progress)
        decided = [(item, v) for item, v in zip(items, truth) if v.verdict in ("pass", "fail")]
        try:
            llm = await run_jobs(judge, grade_jobs(judge, [item for item, _ in decided]), progress=progress)
        finally:
            await judge.aclose()
        return [v for _, v in decided], llm

    truth, llm = asyncio.run(main())
    report = {"judge": judge.name, "verifier_undecided": len(items) - len(truth),
              **agreement([(v.verdict, o.verdict) for v, o in zip(truth, llm)]),
              "disagreements": [{"id": v.id, "sample": v.sample, "verifier": v.verdict, "llm": o.verdict,
                                 "llm_reason": o.reason} for v, o in zip(truth, llm) if v.verdict != o.verdict][:100],
              "judge_calls": judge.summary()}
    write_text_atomic(out, json.dumps(report, indent=2) + "\n")
    return report
