"""The `bench` stage: check suites, generate, grade, compare with a reference, and report.

Everything is written under `out_dir`, one folder per suite (generations, verdicts, the reference's verdicts,
pairwise verdicts for open tasks), and at the top `bench.json`, `bench.md` and `failures.jsonl`. Generation,
grading and pairwise judging resume through their own stages, so a killed benchmark picks up where it stopped,
and a benchmark whose every stage is finished recomputes nothing (`BenchResult.skipped`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Literal

from hone.atomic import write_text_atomic
from hone.bench import markdown
from hone.bench.report import BenchReport
from hone.bench.suites import Suite, check_suite, contamination, load_suite
from hone.bench.summary import accuracy_block, by_category, ground_truth_comparison, stop_rate
from hone.errors import HoneError
from hone.generate.base import GenParams, Generator
from hone.generate.registry import EnginePool, GenerateConfig, model_ref
from hone.generate.run import GenerateStageConfig, run_generate
from hone.grade.gap import ScorerGap, scorer_gap
from hone.grade.run import GradeConfig, run_grade
from hone.hashing import tree_sha256
from hone.judge.base import Judge
from hone.judge.factory import JudgeSetup
from hone.records import Generation, PartialJsonl, Verdict, read_records, write_records
from hone.runs import Stage, manifest_for, package_versions
from hone.progress import TokenRate
from hone.stage_contract import StageConfig, StageResult, StepProgress


class BenchConfig(StageConfig):
    """How the benchmark generates and grades. `choice_scoring` "loglik" answers choice tasks by the likeliest
    option letter (hone.bench.loglik); `sandbox` "strict" refuses, before generating anything, where model-written
    code cannot be isolated fully; `workers` are parallel graders (None: all cores). `engine` serves the model
    (the default loads it in this process). `judge` decides open tasks against the reference, both orders, with
    its cache and ledger in the output folder unless it names another; one that costs money needs a budget, or
    `no_budget` said in so many words (the loop's rule, hone.judge.spec.JudgeSpec.require_budget)."""

    params: GenParams = GenParams()
    choice_scoring: str = "generate"  # checked by run_bench: a one-line error naming the choices
    workers: int | None = None
    sandbox: Literal["strict", "weak"] = "strict"
    engine: GenerateConfig = GenerateConfig()
    judge: JudgeSetup | None = None
    no_budget: bool = False

    def fingerprint(self) -> dict:
        from hone.judge.run import JudgeStageConfig

        from hone.grade.strict import STRICT_READER

        # the report's scorer gap is read by the strict second reader: another reader rewrites bench.json
        return {"params": self.params.model_dump(exclude={"batch_size"}), "choice_scoring": self.choice_scoring,
                "sandbox": self.sandbox, "judge": JudgeStageConfig(judge=self.judge).fingerprint() if self.judge
                else None, "strict_reader": STRICT_READER}

    def pairwise_judge(self, reference: str | os.PathLike | None, out: Path) -> Judge | None:
        """The judge of open tasks, built once its budget is known to be set (or waived)."""
        if self.judge is None:
            return None
        if reference is None:
            raise HoneError("--judge compares open answers with a reference model's: it needs --reference")
        self.judge.spec.require_budget(self.judge.budget_usd, self.no_budget,
                                       "pass --budget-usd USD (a cap on the judge ledger of the output folder)",
                                       "pass --no-budget")
        return self.judge.make(out)


class BenchResult(StageResult):
    """The typed bench.json, and per suite the items the paired gate compares (tasks with ground truth)."""

    report: BenchReport
    correct: dict[str, dict[str, bool]]  # suite -> task id -> passed
    categories: dict[str, dict[str, str]]  # suite -> task id -> category

    def figures(self) -> dict[str, dict[str, Any]]:
        """Per suite: accuracy, its CI, n, correct and error counts, as JSON (typed: `report.figures()`)."""
        return {name: f.model_dump() for name, f in self.report.figures().items()}

    def stop_rates(self) -> dict[str, float | None]:
        """Per suite: the share of answers that ended their turn (what the gate's stop-rate guard compares)."""
        return {name: s.stop_rate for name, s in self.report.suites.items()}


BENCH_FILE, FAILURES_FILE = "bench.json", "failures.jsonl"


def suite_outputs(out_dir: str | os.PathLike, suite: str) -> tuple[Path, Path]:
    """(generations, verdicts) of one suite under a benchmark's folder."""
    return Path(out_dir) / suite / "generations.jsonl", Path(out_dir) / suite / "verdicts.jsonl"


def _suites(task_paths: list[str]) -> list[Suite]:
    suites = [load_suite(str(p)) for p in task_paths]
    names = [s.name for s in suites]
    for n in names:
        if names.count(n) > 1:
            raise HoneError(f"two suites are named {n!r}; name them NAME=PATH")
    for s in suites:
        check_suite(s)
    return suites


def _reference_for(suite: Suite, reference: list[Generation], out: Path) -> Path:
    """The reference's answers to this suite's tasks, in a file of their own (so grading can resume)."""
    ids = {t.id for t in suite.tasks}
    mine = [g for g in reference if g.id in ids]
    if not mine:
        raise HoneError(f"the reference has no answers for suite {suite.name!r}")
    path = out / "reference_generations.jsonl"
    if not path.exists() or read_records(path, Generation) != mine:
        write_records(path, mine)
    return path


def _pairwise(judge: Judge, suite: Suite, ours: list[Generation], theirs: list[Generation],
              path: Path, answers: tuple[Path, Path], restart: bool) -> tuple[list[Verdict], bool, int]:
    """Judge open tasks pairwise through the judge driver, resumably; return (verdicts, skipped, unfinished). A
    judge that raises or answers anything but win / tie / loss becomes an `error` verdict (hone.judge.driver); one a
    re-run may fix (an API error, the budget reached) is written but not final: the benchmark then ends unfinished."""
    from hone.judge.base import is_retryable
    from hone.judge.driver import compare_all

    stage = Stage(manifest_for(path), "bench-pairwise", {"tasks": suite.path, "ours": answers[0],
                                                          "reference": answers[1]}, {"judge": judge.name})
    if stage.is_done():
        return read_records(path, Verdict, allow_empty=True), True, 0
    mine = {g.id: g for g in ours if g.sample == 0}
    other = {g.id: g for g in theirs if g.sample == 0}
    todo_tasks = [t for t in suite.tasks if t.kind == "open" and t.id in mine and t.id in other]
    stage.start([path], restart=restart)
    sink = PartialJsonl(path, Verdict, key=lambda v: v.id)
    retry_later: list[Verdict] = []
    try:
        todo = [(t, mine[t.id], other[t.id]) for t in todo_tasks if t.id not in sink.done]
        if todo:  # each as it finishes: a kill keeps what was judged
            compare_all(judge, todo, on_result=lambda v: retry_later.append(v) if is_retryable(v) else sink.append(v))
        order = {t.id: i for i, t in enumerate(suite.tasks)}
        verdicts = sink.finish(order=lambda v: order.get(v.id, len(order)), unfinished=retry_later)
    finally:
        sink.close()
    if not retry_later:
        stage.finish({"pairwise": path}, {"verdicts": len(verdicts)})
    return verdicts, False, len(retry_later)


def _open_summary(suite: Suite, pairwise: list[Verdict] | None, judge_name: str | None) -> dict[str, Any]:
    n_open = sum(t.kind == "open" for t in suite.tasks)
    out: dict[str, Any] = {"tasks": n_open, "judge": judge_name}
    if pairwise is None:
        out.update(win=0, tie=0, loss=0, error=0, not_compared=n_open)
    else:
        out.update({k: sum(v.verdict == k for v in pairwise) for k in ("win", "tie", "loss", "error")},
                   not_compared=n_open - len(pairwise))
    return out


def _failures(suite: Suite, generations: list[Generation], verdicts: list[Verdict],
              gap: ScorerGap) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The failed answers, and the examples the strict second reading disagreed on (outcome "scorer gap: ...")."""
    from hone.judge.failures import failure_row

    tasks = {t.id: t for t in suite.tasks}
    gens = {(g.id, g.sample): g for g in generations}
    by_key = {(v.id, v.sample): v for v in verdicts}
    failed = [failure_row(tasks[v.id], gens.get((v.id, v.sample)), v, suite.name) for v in verdicts
              if v.verdict != "pass"]
    disagreed = [{**failure_row(tasks[e.id], gens.get((e.id, e.sample)), by_key[(e.id, e.sample)], suite.name),
                  "outcome": f"scorer gap: verifier {e.verifier}, strict reading {e.strict}"} for e in gap.examples]
    return failed, disagreed


def run_bench(
    config: BenchConfig,
    model_dir: str | os.PathLike,
    task_paths: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    reference: str | os.PathLike | None = None,
    train_data: list[str | os.PathLike] | str | os.PathLike | None = None,
    judge: Judge | None = None,
    generator: Generator | None = None,
    engine_ref: dict[str, Any] | None = None,
    progress: StepProgress | None = None,
) -> BenchResult:
    """Benchmark a model on task suites; write bench.json, bench.md, failures.jsonl; return them typed.

    `task_paths` entries are PATH or NAME=PATH. `reference` is another model's Generation JSONL on the same
    tasks (win/tie/loss). `train_data` files are checked for n-gram overlap with every suite. `generator`
    replaces loading `model_dir` with `config.engine` (e.g. the loop's engine pool); `engine_ref` says what its
    answers depend on (`hone.generate.registry.model_ref`; by default `config.engine`'s), so answers of different
    engines never mix. `judge` (a ready Judge, else `config.judge`) decides open tasks against the reference
    (`Judge.compare`); without one they are reported as not compared.
    """
    if config.engine.backend == "openai":
        raise HoneError("hone bench serves --model itself (--backend server); for a server somebody else runs, "
                        "use hone generate --backend openai, then hone grade")
    judge = judge or config.pairwise_judge(reference, Path(out_dir))
    pool = None
    if generator is None and config.engine != GenerateConfig():
        pool = EnginePool(config.engine)  # a server starts only if some suite still needs generating
        generator = pool.lazy(model_dir, out_dir)
        engine_ref = engine_ref or model_ref(config.engine, model_dir)
    try:
        return _run_bench(config, model_dir, task_paths, Path(out_dir), reference, train_data, judge, generator,
                          engine_ref, progress)
    finally:
        if pool is not None:
            pool.close()


def _run_bench(config: BenchConfig, model_dir: str | os.PathLike, task_paths: list[str | os.PathLike], out: Path,
               reference: str | os.PathLike | None, train_data: list[str | os.PathLike] | str | os.PathLike | None,
               judge: Judge | None, generator: Generator | None, engine_ref: dict[str, Any] | None,
               progress: StepProgress | None) -> BenchResult:
    params, choice_scoring, workers, sandbox = config.params, config.choice_scoring, config.workers, config.sandbox
    restart, overwrite = config.restart, config.overwrite
    suites = _suites([str(p) for p in task_paths])
    from hone.grade.sandbox import require_for

    require_for([t for s in suites for t in s.tasks], sandbox)
    train = [train_data] if isinstance(train_data, (str, os.PathLike)) else list(train_data or [])
    checks = contamination(suites, train) if train else None
    ref_gens = read_records(reference, Generation) if reference else None
    loaded: list[Generator] = [generator] if generator is not None else []

    if choice_scoring not in ("generate", "loglik"):
        raise HoneError(f"choice scoring {choice_scoring!r}: use generate or loglik")
    if choice_scoring == "loglik" and generator is not None:
        raise HoneError("log-likelihood choice scoring reads the model's logits: it needs the model loaded here, "
                        "not a served engine")
    scoring = {"choice_scoring": choice_scoring} if choice_scoring != "generate" else {}

    def make_generator() -> Generator:
        if not loaded:
            from hone.generate.hf import HFGenerator

            hf = HFGenerator.from_dir(str(model_dir))
            if choice_scoring == "loglik":
                from hone.bench.loglik import LoglikChoiceGenerator

                hf = LoglikChoiceGenerator(hf, {t.id: t for s in suites for t in s.tasks})
            loaded.append(hf)
        return loaded[0]

    def bar(stage: str, suite: Suite, note: Callable[[], str] | None = None):
        return progress(f"{stage} {suite.name}", note) if progress else None

    def close(factory) -> None:
        if factory is not None and hasattr(factory, "close"):
            factory.close()

    report: dict[str, Any] = {"model": str(model_dir), "params": params.model_dump(exclude={"batch_size"}),
                              "reference": str(reference) if reference else None, "suites": {},
                              "contamination": checks, "versions": package_versions()}
    failures: list[dict[str, Any]] = []
    gap_rows: list[dict[str, Any]] = []  # written after the failures, in the same file
    correct: dict[str, dict[str, bool]] = {}
    categories: dict[str, dict[str, str]] = {}
    skipped: list[bool] = []  # one per stage run: all True means nothing was recomputed
    unfinished = 0  # pairwise comparisons a re-run may finish (API errors, the judge budget reached)
    made: dict[str, Path] = {}  # every step's output, by suite: the inputs of the report
    sandbox_used = False
    grading = GradeConfig(workers=workers, sandbox=sandbox, restart=restart, overwrite=overwrite)
    for suite in suites:
        sdir = out / suite.name
        gens_path, verdicts_path = suite_outputs(out, suite.name)
        factory = bar("generate", suite, TokenRate(gens_path))
        try:
            generated = run_generate(GenerateStageConfig(
                params=params, restart=restart, overwrite=overwrite,
                model_ref={**model_ref(GenerateConfig(), model_dir), **scoring} if generator is None else
                engine_ref or {"model": model_dir, "generator": getattr(generator, "name", "custom")}),
                make_generator, suite.path, gens_path, progress=factory)
            gens, gen_skipped = generated.generations, generated.skipped
        finally:
            close(factory)
        factory = bar("grade", suite)
        try:
            graded = run_grade(grading, suite.path, gens_path, verdicts_path,
                               progress=factory)
            verdicts, grade_skipped = graded.verdicts, graded.skipped
        finally:
            close(factory)
        skipped += [gen_skipped, grade_skipped]
        made.update({f"{suite.name}.tasks": suite.path, f"{suite.name}.generations": gens_path,
                     f"{suite.name}.verdicts": verdicts_path})
        sandbox_used |= any(t.kind == "code" for t in suite.tasks)
        entry: dict[str, Any] = {
            "path": str(suite.path), "sha256": tree_sha256(suite.path),
            "accuracy": accuracy_block([t for t in suite.tasks if t.kind != "open"], verdicts),
            "categories": by_category(suite.tasks, verdicts, suite.name),
            "open_tasks": sum(t.kind == "open" for t in suite.tasks), "warnings": suite.warnings,
            "stop_rate": stop_rate(gens),
        }
        gap = scorer_gap({t.id: t for t in suite.tasks}, gens, verdicts)
        if gap.answers:
            entry["scorer_gap"] = gap.model_dump()
        if ref_gens is not None:
            ref_path = _reference_for(suite, ref_gens, sdir)
            ref_graded = run_grade(grading, suite.path, ref_path, sdir / "reference_verdicts.jsonl")
            ref_verdicts = ref_graded.verdicts
            skipped.append(ref_graded.skipped)
            made[f"{suite.name}.reference_verdicts"] = sdir / "reference_verdicts.jsonl"
            pairwise = None
            if judge is not None and entry["open_tasks"]:
                pairwise, pair_skipped, pair_unfinished = _pairwise(
                    judge, suite, gens, read_records(ref_path, Generation), sdir / "pairwise.jsonl",
                    (gens_path, ref_path), restart)
                skipped.append(pair_skipped)
                unfinished += pair_unfinished
                made[f"{suite.name}.pairwise"] = sdir / "pairwise.jsonl"
            entry["reference_accuracy"] = accuracy_block([t for t in suite.tasks if t.kind != "open"], ref_verdicts)
            entry["comparison"] = {"ground_truth": ground_truth_comparison(verdicts, ref_verdicts),
                                   "open": _open_summary(suite, pairwise, judge.name if judge else None)}
        report["suites"][suite.name] = entry
        failed, disagreed = _failures(suite, gens, verdicts, gap)
        failures += failed
        gap_rows += disagreed
        kinds = {t.id: t.kind for t in suite.tasks}
        correct[suite.name] = {v.id: v.verdict == "pass" for v in verdicts if kinds[v.id] != "open"}
        categories[suite.name] = {t.id: str(t.meta.get("category") or suite.name) for t in suite.tasks}
    if sandbox_used:
        from hone.grade.sandbox import isolation

        report["sandbox"] = f"{sandbox}: {isolation().describe()}"
    typed = BenchReport.model_validate(report)
    blocks = [s.accuracy for s in typed.suites.values()]
    outputs = {"bench": out / BENCH_FILE, "markdown": out / "bench.md", "failures": out / FAILURES_FILE}
    counts = {"suites": len(blocks), "answers": sum(b.answers for b in blocks), "pass": sum(b.passed for b in blocks),
              "fail": sum(b.fail for b in blocks), "error": sum(b.error for b in blocks), "failures": len(failures)}
    # The report's own manifest: the same steps' files and settings leave bench.json as it is (no rewrite).
    stage = Stage(manifest_for(outputs["bench"]), "bench", {**made, **{f"train{i}": p for i, p in enumerate(train)}},
                  {**config.fingerprint(), "model": str(model_dir)})
    written = stage.is_done() and not unfinished
    if not written:
        stage.start()
        rows = failures + gap_rows
        write_text_atomic(outputs["failures"], "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        write_text_atomic(outputs["bench"], json.dumps(typed.to_json(), indent=2, ensure_ascii=False) + "\n")
        write_text_atomic(outputs["markdown"], markdown.render(typed.to_json()))
    if unfinished:
        raise HoneError(f"{out}: {unfinished} pairwise comparisons are not finished (judge API errors, or the judge "
                        "budget reached; see bench.json); run the same command again (with a larger --budget-usd) "
                        "to finish them")
    if not written:
        stage.finish(outputs, counts)
    return BenchResult(outputs=outputs, counts=counts, skipped=all(skipped), report=typed, correct=correct,
                       categories=categories)
