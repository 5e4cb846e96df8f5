"""The `bench` stage: check suites, generate, grade, compare with a reference, and report.

Everything is written under `out_dir`, one folder per suite (generations, verdicts, the reference's verdicts,
pairwise verdicts for open tasks), and at the top `bench.json`, `bench.md` and `failures.jsonl`. Generation and
grading resume through their own stages, so a killed benchmark picks up where it stopped.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
from pathlib import Path
from typing import Any, Callable

from hone.atomic import write_text_atomic
from hone.bench import markdown
from hone.bench.suites import Suite, check_suite, contamination, load_suite
from hone.bench.summary import accuracy_block, by_category, ground_truth_comparison
from hone.errors import HoneError
from hone.generate.base import GenParams, Generator
from hone.generate.run import GenerateStageConfig, run_generate
from hone.grade.run import GradeConfig, run_grade
from hone.hashing import tree_sha256
from hone.records import Generation, PartialJsonl, Task, Verdict, read_records, write_records
from hone.runs import Stage, manifest_for, package_versions

# (task, our answer, the reference's answer) -> Verdict with verdict win / tie / loss / error, from our side.
PairwiseJudge = Callable[[Task, Generation, Generation], Any]


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


def _pairwise(judge: PairwiseJudge, suite: Suite, ours: list[Generation], theirs: list[Generation],
              path: Path, answers: tuple[Path, Path], restart: bool) -> list[Verdict]:
    """Judge open tasks pairwise, resumably; an exception or a bad outcome becomes an `error` verdict."""
    mine = {g.id: g for g in ours if g.sample == 0}
    other = {g.id: g for g in theirs if g.sample == 0}
    todo_tasks = [t for t in suite.tasks if t.kind == "open" and t.id in mine and t.id in other]
    name = getattr(judge, "name", getattr(judge, "__name__", "pairwise"))
    stage = Stage(manifest_for(path), "bench-pairwise", {"tasks": suite.path, "ours": answers[0],
                                                          "reference": answers[1]}, {"judge": str(name)})
    stage.start([path], restart=restart)
    sink = PartialJsonl(path, Verdict, key=lambda v: v.id)

    def checked(task: Task, result: Any) -> Verdict:
        if isinstance(result, BaseException) or not isinstance(result, Verdict) or \
                result.verdict not in ("win", "tie", "loss", "error"):
            why = f"{type(result).__name__}: {result}" if isinstance(result, BaseException) else \
                f"the pairwise judge returned {result!r:.200}"
            return Verdict(id=task.id, judge=str(name), verdict="error", reason=why)
        return result

    try:
        todo = [t for t in todo_tasks if t.id not in sink.done]
        pending = []
        for t in todo:
            try:
                result = judge(t, mine[t.id], other[t.id])
            except Exception as e:  # noqa: BLE001 - a judge failure is an error verdict, never a win
                result = e
            if inspect.isawaitable(result):
                pending.append((t, result))
            else:
                sink.append(checked(t, result))
        if pending:
            async def one(task: Task, awaitable: Any) -> tuple[Task, Any]:
                try:
                    return task, await awaitable
                except Exception as e:  # noqa: BLE001 - becomes an error verdict in `checked`
                    return task, e

            async def judge_all() -> None:
                for done in asyncio.as_completed([one(t, a) for t, a in pending]):
                    task, result = await done
                    sink.append(checked(task, result))  # as each finishes: a kill keeps what was judged

            asyncio.run(judge_all())
        order = {t.id: i for i, t in enumerate(suite.tasks)}
        verdicts = sink.finish(order=lambda v: order.get(v.id, len(order)))
    finally:
        sink.close()
    stage.finish({"pairwise": path}, {"verdicts": len(verdicts)})
    return verdicts


def _open_summary(suite: Suite, pairwise: list[Verdict] | None, judge_name: str | None) -> dict[str, Any]:
    n_open = sum(t.kind == "open" for t in suite.tasks)
    out: dict[str, Any] = {"tasks": n_open, "judge": judge_name}
    if pairwise is None:
        out.update(win=0, tie=0, loss=0, error=0, not_compared=n_open)
    else:
        out.update({k: sum(v.verdict == k for v in pairwise) for k in ("win", "tie", "loss", "error")},
                   not_compared=n_open - len(pairwise))
    return out


def _failures(suite: Suite, generations: list[Generation], verdicts: list[Verdict]) -> list[dict[str, Any]]:
    from hone.judge.failures import failure_row

    tasks = {t.id: t for t in suite.tasks}
    gens = {(g.id, g.sample): g for g in generations}
    return [failure_row(tasks[v.id], gens.get((v.id, v.sample)), v, suite.name) for v in verdicts
            if v.verdict != "pass"]


def run_bench(
    model_dir: str | os.PathLike,
    task_paths: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    params: GenParams,
    reference: str | os.PathLike | None = None,
    train_data: list[str | os.PathLike] | str | os.PathLike | None = None,
    pairwise_judge: PairwiseJudge | None = None,
    generator: Generator | None = None,
    choice_scoring: str = "generate",
    workers: int | None = None,
    progress_factory: Callable[[str], Callable[[int, int], Callable[[int], None]]] | None = None,
    restart: bool = False,
    overwrite: bool = False,
    sandbox: str = "strict",
) -> dict[str, Any]:
    """Benchmark a model on task suites; write bench.json, bench.md, failures.jsonl; return bench.json's content.

    `task_paths` entries are PATH or NAME=PATH. `reference` is another model's Generation JSONL on the same
    tasks (win/tie/loss). `train_data` files are checked for n-gram overlap with every suite. `generator`
    replaces loading `model_dir` with transformers (e.g. an OpenAI-compatible server). `choice_scoring`
    "loglik" answers choice tasks by the likeliest option letter (hone.bench.loglik). `pairwise_judge`
    decides open tasks against the reference; without it they are reported as not compared. `sandbox` is the
    code sandbox's level: "strict" refuses, before generating anything, where code cannot be isolated fully.
    """
    out = Path(out_dir)
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

    def bar(stage: str, suite: Suite):
        return progress_factory(f"{stage} {suite.name}") if progress_factory else None

    def close(factory) -> None:
        if factory is not None and hasattr(factory, "close"):
            factory.close()

    judge_name = getattr(pairwise_judge, "name", getattr(pairwise_judge, "__name__", "pairwise")) \
        if pairwise_judge else None
    report: dict[str, Any] = {"model": str(model_dir), "params": params.model_dump(exclude={"batch_size"}),
                              "reference": str(reference) if reference else None, "suites": {},
                              "contamination": checks, "versions": package_versions()}
    failures: list[dict[str, Any]] = []
    sandbox_used = False
    grading = GradeConfig(workers=workers, sandbox=sandbox, restart=restart, overwrite=overwrite)
    for suite in suites:
        sdir = out / suite.name
        factory = bar("generate", suite)
        try:
            gens = run_generate(GenerateStageConfig(
                params=params, restart=restart, overwrite=overwrite,
                model_ref={"model": model_dir, **scoring} if generator is None else
                {"model": model_dir, "generator": getattr(generator, "name", "custom")}),
                make_generator, suite.path, sdir / "generations.jsonl", progress=factory).generations
        finally:
            close(factory)
        factory = bar("grade", suite)
        try:
            verdicts = run_grade(grading, suite.path, sdir / "generations.jsonl", sdir / "verdicts.jsonl",
                                 progress=factory).verdicts
        finally:
            close(factory)
        sandbox_used |= any(t.kind == "code" for t in suite.tasks)
        entry: dict[str, Any] = {
            "path": str(suite.path), "sha256": tree_sha256(suite.path),
            "accuracy": accuracy_block([t for t in suite.tasks if t.kind != "open"], verdicts),
            "categories": by_category(suite.tasks, verdicts, suite.name),
            "open_tasks": sum(t.kind == "open" for t in suite.tasks), "warnings": suite.warnings,
        }
        if ref_gens is not None:
            ref_path = _reference_for(suite, ref_gens, sdir)
            ref_verdicts = run_grade(grading, suite.path, ref_path, sdir / "reference_verdicts.jsonl").verdicts
            pairwise = None
            if pairwise_judge is not None and entry["open_tasks"]:
                pairwise = _pairwise(pairwise_judge, suite, gens, read_records(ref_path, Generation),
                                     sdir / "pairwise.jsonl", (sdir / "generations.jsonl", ref_path), restart)
            entry["reference_accuracy"] = accuracy_block([t for t in suite.tasks if t.kind != "open"], ref_verdicts)
            entry["comparison"] = {"ground_truth": ground_truth_comparison(verdicts, ref_verdicts),
                                   "open": _open_summary(suite, pairwise, judge_name)}
        report["suites"][suite.name] = entry
        failures += _failures(suite, gens, verdicts)
    if sandbox_used:
        from hone.grade.sandbox import isolation

        report["sandbox"] = f"{sandbox}: {isolation().describe()}"
    write_text_atomic(out / "failures.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in failures))
    write_text_atomic(out / "bench.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(out / "bench.md", markdown.render(report))
    return report
