"""`hone judge calibrate`: how often the LLM judge agrees with the verifiers where both can judge.

On items a verifier decides (math, code), the LLM judge grades the same answers blind to the verifier's
verdict. The report gives agreement, Cohen's kappa, the confusion matrix, how often the LLM passes what the
verifier failed (the costly mistake) and the other way round, its errors, and the disagreeing items.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from hone.atomic import write_text_atomic
from hone.errors import HoneError
from hone.judge.driver import grade_jobs, run_jobs
from hone.judge.factory import JudgeSetup
from hone.judge.prompts import GRADE
from hone.judge.run import read_generations
from hone.judge.verifier import VerifierJudge
from hone.records import Verdict, read_tasks
from hone.runs import Stage, manifest_for
from hone.stage_contract import ProgressFactory, StageConfig, StageResult


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


class CalibrateConfig(StageConfig):
    """The LLM judge to measure and how it is called; the verifiers run code at its sandbox level."""

    judge: JudgeSetup

    def fingerprint(self) -> dict:
        s = self.judge.settings
        from hone.grade import grader_versions

        return {"judge": self.judge.spec.text, "template": GRADE, "max_tokens": s.max_tokens, "reask": s.reask,
                "temperature": s.temperature, "sandbox": self.judge.sandbox, "graders": grader_versions()}


class Disagreement(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    sample: int
    verifier: str
    llm: str
    llm_reason: str


class CalibrateReport(BaseModel):
    """`agreement()`'s figures for one judge, the items the verifier could not decide, the disagreeing items
    (at most 100) and the judge's calls."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    judge: str
    verifier_undecided: int
    items: int
    both_decided: int
    agreement: float | None
    cohen_kappa: float | None
    confusion: dict[str, dict[str, int]]
    llm_errors: int
    false_pass_rate: float | None
    false_fail_rate: float | None
    disagreements: list[Disagreement]
    judge_calls: dict[str, Any]


class CalibrateResult(StageResult):
    report: CalibrateReport


def _result(out: Path, report: CalibrateReport, skipped: bool) -> CalibrateResult:
    return CalibrateResult(outputs={"report": out}, skipped=skipped, report=report,
                           counts={"items": report.items, "both_decided": report.both_decided,
                                   "llm_errors": report.llm_errors, "disagreements": len(report.disagreements)})


def run_calibrate(config: CalibrateConfig, tasks_path: str | os.PathLike, generations_path: str | os.PathLike,
                  out_path: str | os.PathLike, *, progress: ProgressFactory | None = None) -> CalibrateResult:
    """Grade the math and code items with the verifiers and with the LLM judge; write the agreement report."""
    out = Path(out_path)
    setup = config.judge
    if setup.spec.verifiers:
        raise HoneError(f"--judge {setup.spec.text!r}: calibrate measures an LLM judge (anthropic, openai or local)")
    task_list = read_tasks(tasks_path)
    tasks = {t.id: t for t in task_list}
    gens = [g for g in read_generations(generations_path, tasks, tasks_path) if tasks[g.id].kind in ("math", "code")]
    if not gens:
        raise HoneError(f"{tasks_path}: no math or code tasks, so no verifier can decide any item to compare with")
    stage = Stage(manifest_for(out), "calibrate", {"tasks": tasks_path, "generations": generations_path,
                                                   "judge_model": setup.spec.model_dir}, config.fingerprint())
    if stage.is_done() and out.exists():
        return _result(out, CalibrateReport.model_validate_json(out.read_text()), skipped=True)
    judge = setup.make(out.parent)
    from hone.grade.sandbox import require_for

    require_for([tasks[g.id] for g in gens], setup.sandbox)
    stage.start([out], restart=config.restart, overwrite=config.overwrite)
    verifier = VerifierJudge(sandbox=setup.sandbox)
    items = [(tasks[g.id], g) for g in gens]
    advance = progress(2 * len(items), 0) if progress else None

    async def main() -> tuple[list[Verdict], list[Verdict]]:
        truth = await run_jobs(verifier, grade_jobs(verifier, items), progress=advance)
        decided = [(item, v) for item, v in zip(items, truth) if v.verdict in ("pass", "fail")]
        try:
            llm = await run_jobs(judge, grade_jobs(judge, [item for item, _ in decided]), progress=advance)
        finally:
            await judge.aclose()
        return [v for _, v in decided], llm

    truth, llm = asyncio.run(main())
    report = CalibrateReport(
        judge=judge.name, verifier_undecided=len(items) - len(truth),
        **agreement([(v.verdict, o.verdict) for v, o in zip(truth, llm)]),
        disagreements=[Disagreement(id=v.id, sample=v.sample, verifier=v.verdict, llm=o.verdict, llm_reason=o.reason)
                       for v, o in zip(truth, llm) if v.verdict != o.verdict][:100],
        judge_calls=judge.summary())
    write_text_atomic(out, report.model_dump_json(indent=2) + "\n")
    result = _result(out, report, skipped=False)
    stage.finish({"report": out}, result.counts)
    return result
