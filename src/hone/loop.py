"""`hone loop`: rounds of generate -> judge -> improve -> data -> train -> merge + verify -> bench -> gate.

Each round starts from the model promoted so far. Everything a round makes lives under `round-N/` with its
manifests, so a killed loop resumes at the stage it was in and redoes no finished item. The gate compares the
candidate with the promoted model on the same held-out items, paired, and promotes only a model that did not
regress beyond the tolerance on any suite. `summary.json` and `report.md` are rebuilt from the files on disk.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hone.atomic import write_text_atomic
from hone.errors import HoneError
from hone.loop_config import LoopConfig, LoopJudgeConfig
from hone.progress import stage_bar
from hone.records import Generation, Task, Verdict, read_tasks, write_records

if TYPE_CHECKING:
    from hone.bench.run import BenchResult
    from hone.judge.factory import JudgeSetup

Say = Callable[[str], None]


def _round_dir(run_dir: Path, r: int) -> Path:
    return run_dir / f"round-{r}"


def check_sandbox(config: LoopConfig, say: Say) -> None:
    """With code tasks to grade, refuse before round 0 where the sandbox cannot hold (config `sandbox: strict`)."""
    from hone.grade.sandbox import require_for

    iso = require_for([t for p in (config.train_tasks, *config.heldout.values()) for t in read_tasks(p)],
                      config.sandbox)
    if iso is not None:
        say(f"sandbox: {config.sandbox}: {iso.describe()}")


def check_heldout_is_separate(config: LoopConfig) -> None:
    """Held-out suites must share no id and no prompt with the training tasks (the uplift would be a lie)."""
    train = read_tasks(config.train_tasks)
    ids = {t.id for t in train}
    prompts = {json.dumps(t.chat(), sort_keys=True) for t in train}
    for name, path in config.heldout.items():
        for t in read_tasks(path):
            if t.id in ids or json.dumps(t.chat(), sort_keys=True) in prompts:
                raise HoneError(f"{path}: held-out suite {name!r} item {t.id!r} is also a training task; "
                                "an uplift measured on it would not be held out")


class _Models:
    """One open engine (hone.generate.registry) per model at a time: loading an 8B model or starting its server
    twice a round costs minutes. Closed before training, so that the GPU is free for it; a server's log goes to
    the folder of the round that started it."""

    def __init__(self, config: LoopConfig):
        from hone.generate.registry import Engine

        self.config = config.generate if config.generate.device or not config.device else \
            config.generate.model_copy(update={"device": config.device})
        self._engine: Engine | None = None

    def get(self, path: Path, log_dir: Path):
        from hone.generate.registry import Engine

        if self._engine is None or self._engine.model != str(path):
            self.close()
            self._engine = Engine(self.config, path, log_dir / "server.log")
        return self._engine()

    def lazy(self, path: Path, log_dir: Path) -> "_Lazy":
        return _Lazy(self, path, log_dir)

    def ref(self, path: Path) -> dict[str, Any]:
        from hone.generate.registry import model_ref

        return model_ref(self.config, path)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


class _Lazy:
    """A generator that opens the engine on its first request: a stage found finished on resume never loads a
    model or starts a server. Named like the engines' own generators (the model path), so manifests match."""

    def __init__(self, models: _Models, path: Path, log_dir: Path):
        self.models, self.path, self.log_dir, self.name = models, path, log_dir, str(path)

    def generate(self, requests, params, progress=None):
        return self.models.get(self.path, self.log_dir).generate(requests, params, progress)


def _judge_setup(config: LoopConfig, run_dir: Path | None) -> JudgeSetup:
    """The loop's judge as the judge, critique and calibrate stages take it; its cache + ledger in `run_dir`."""
    from hone.judge.factory import JudgeSetup

    jc = config.judge_config
    return JudgeSetup(spec=config.judge_spec, settings=jc.settings(), concurrency=jc.concurrency,
                      budget_usd=jc.budget_usd, sandbox=config.sandbox, run_dir=run_dir)


def _judge(config: LoopConfig, tasks: Path, gens: Path, out: Path, run_dir: Path, label: str,
           restart: bool) -> list[Verdict]:
    """Verifiers alone run straight through the grader (no async judge machinery, ~1.6x faster)."""
    if config.judge == "verifier":
        from hone.grade.run import GradeConfig, run_grade

        with stage_bar(f"{label} · grade") as bar:
            grading = GradeConfig(sandbox=config.sandbox, restart=restart)
            return run_grade(grading, tasks, gens, out, progress=bar).verdicts
    from hone.judge.run import JudgeStageConfig, run_judge
    from hone.report.status import spend_text

    with stage_bar(f"{label} · judge", note=lambda: spend_text(run_dir, config.judge_config.budget_usd)) as bar:
        judging = JudgeStageConfig(judge=_judge_setup(config, run_dir), restart=restart)
        run = run_judge(judging, tasks, gens, out, progress=bar)
    if run.counts["unfinished"]:
        raise HoneError(f"{out}: {run.counts['unfinished']} items ended in errors a re-run may fix (API, budget); "
                        "run the same command again to finish them before training on this round")
    return run.verdicts


def round_prompts(pool: list[Task], per_round: int | None, r: int) -> list[Task]:
    """Round r's prompts: the next `per_round` of the pool, wrapping around. Fresh prompts each round, because
    re-sampling prompts the previous round trained on mostly returns answers it has memorized (measured on the
    demo: 1,699 vs 1,544 of 3,000 solved, same model)."""
    if per_round is None or per_round >= len(pool):
        return pool
    start = (r - 1) * per_round % len(pool)
    return (pool + pool)[start : start + per_round]


def _sample(config: LoopConfig, models: _Models, model: Path, rd: Path, run_dir: Path, r: int,
            say: Say, restart: bool) -> tuple[Path, Path, dict[str, Any]]:
    """n samples per training prompt, judged; prompts with no pass are sampled again (resample_unsolved)."""
    from hone.generate.base import GenParams
    from hone.generate.run import GenerateStageConfig, run_generate
    from hone.report.status import TokenRate

    s = config.sample
    pool = read_tasks(config.train_tasks)
    tasks, todo_path = round_prompts(pool, s.prompts_per_round, r), config.train_tasks
    if len(tasks) < len(pool):
        todo_path = rd / "prompts.jsonl"
        write_records(todo_path, tasks)
    all_gens: list[Generation] = []
    all_verdicts: list[Verdict] = []
    for attempt in range(1 + s.resample_unsolved):
        params = GenParams(n=s.n, temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens,
                           batch_size=s.batch_size, seed=config.seed * 1000 + r * 10 + attempt)
        gens_path = rd / f"samples-{attempt}.jsonl"
        label = f"round {r} · pass {attempt}"
        with stage_bar(f"{label} · sample", note=TokenRate(gens_path)) as bar:
            gens = run_generate(GenerateStageConfig(params=params, model_ref=models.ref(model), restart=restart),
                                lambda: models.get(model, rd), todo_path, gens_path, progress=bar).generations
        verdicts = _judge(config, todo_path, gens_path, rd / f"verdicts-{attempt}.jsonl", run_dir, label, restart)
        offset = attempt * s.n  # keep (id, sample) unique across attempts
        all_gens += [g.model_copy(update={"sample": g.sample + offset}) for g in gens]
        all_verdicts += [v.model_copy(update={"sample": v.sample + offset}) for v in verdicts]
        solved = {v.id for v in all_verdicts if v.verdict == "pass"}
        unsolved = [t for t in tasks if t.id not in solved]
        say(f"  sampling pass {attempt}: {len(solved)}/{len(tasks)} training prompts have a verified answer")
        if not unsolved or attempt == s.resample_unsolved:
            break
        todo_path = rd / f"unsolved-{attempt + 1}.jsonl"
        write_records(todo_path, unsolved)
    gens_all, verdicts_all = rd / "samples.jsonl", rd / "verdicts.jsonl"
    write_records(gens_all, all_gens)
    write_records(verdicts_all, all_verdicts)
    stats = {"tasks": len(tasks), "solved": len({v.id for v in all_verdicts if v.verdict == "pass"}),
             "samples": len(all_gens), "errors": sum(v.verdict == "error" for v in all_verdicts)}
    return gens_all, verdicts_all, stats


def _data(config: LoopConfig, rd: Path, r: int, gens: Path, verdicts: Path, critiques: Path | None,
          restart: bool) -> tuple[Path, dict]:
    from hone.data.stage import DataStageConfig, run_data

    out = rd / "sft.jsonl"
    guards = DataStageConfig(kind="sft", replay_share=config.data.replay_share, ngram=config.data.ngram, round=r,
                             max_per_task=config.data.max_per_task, seed=config.seed + r, restart=restart)
    inputs = dict(bench_paths=list(config.heldout.values()), replay_path=config.data.replay)
    if config.control == "unverified":
        res = run_data(guards.model_copy(update={"kind": "unverified"}), config.train_tasks, out,
                       generations_path=gens, **inputs)
        return out, {"rows": len(res.rows), "source": "unverified own samples (control)", **res.report.model_dump()}
    samples = config.improve in ("resample", "both")
    res = run_data(guards, config.train_tasks, out, critiques_path=critiques,
                   generations_path=gens if samples else None, verdicts_path=verdicts if samples else None, **inputs)
    if critiques is not None and config.data.dpo:
        pairs = guards.model_copy(update={"kind": "dpo", "replay_share": 0.0, "max_per_task": None})
        run_data(pairs, config.train_tasks, rd / "dpo.jsonl", critiques_path=critiques,
                 bench_paths=inputs["bench_paths"])
    source = " + ".join(k for k, on in (("samples", samples), ("rewrites", critiques is not None)) if on)
    return out, {"rows": len(res.rows), "source": f"verified {source}", **res.report.model_dump()}


def _critique(config: LoopConfig, models: _Models, model: Path, rd: Path, r: int, gens: Path,
              verdicts: Path, restart: bool) -> tuple[Path | None, dict | None]:
    if config.improve not in ("critique", "both"):
        return None, None
    from hone.critique.critique import CritiqueStageConfig, rejudge_with, run_critique
    from hone.generate.base import GenParams

    c = config.critique
    stage_config = CritiqueStageConfig(
        params=GenParams(temperature=c.temperature, max_new_tokens=c.max_new_tokens,
                         batch_size=config.sample.batch_size, seed=config.seed * 1000 + r),
        samples=c.samples, reference_guided=c.reference_guided, round=r, model_ref=models.ref(model),
        restart=restart)
    rejudge = rejudge_with(_judge_setup(config, rd.parent), config.train_tasks, rd.parent)
    out = rd / "critiques.jsonl"
    with stage_bar(f"round {r} · critique") as bar:
        result = run_critique(stage_config, models.lazy(model, rd), rejudge, config.train_tasks, gens, verdicts, out,
                              progress=bar)
    if result.counts["unfinished"]:
        raise HoneError(f"{out}: some rewrites could not be generated or judged yet; run the same command again")
    return out, result.report.model_dump()


def _train_merge(config: LoopConfig, model: Path, rd: Path, data: Path, say: Say, restart: bool) -> Path:
    """LoRA on the promoted model, merged into exactly that model and verified against adapter-on-base."""
    from hone.merge.merge import MergeConfig, run_merge
    from hone.train.sft import run_train

    with stage_bar(f"{rd.name.replace('-', ' ')} · train") as bar:
        trained = run_train(config.train.model_copy(update={"restart": restart}), data, model, rd / "adapter",
                            progress=bar)
    # QLoRA (train.quantize_base) merges into the dequantized weights the adapter saw, with the same proof.
    merged = run_merge(MergeConfig(dequantized_base=config.train.quantize_base is not None, restart=restart), model,
                       trained.outputs["adapter"], rd / "model")
    logits = merged.report.verification.logits
    say(f"  merged into {model}: verified clean (max |logit diff| {logits.max_abs_logit_diff.value:.2e}, "
        f"top-1 agreement {logits.top1_agreement.value:.3f})")
    return merged.outputs["model"]


def _bench(config: LoopConfig, models: _Models, model: Path, out_dir: Path, restart: bool) -> BenchResult:
    from hone.bench.run import BenchConfig, run_bench
    from hone.generate.base import GenParams

    bench = BenchConfig(params=GenParams(max_new_tokens=config.bench.max_new_tokens,
                                         batch_size=config.bench.batch_size), sandbox=config.sandbox, restart=restart)
    specs = [f"{name}={path}" for name, path in config.heldout.items()]
    label = out_dir.parent.name.replace("-", " ")
    return run_bench(bench, model, specs, out_dir, generator=models.lazy(model, out_dir.parent),
                     engine_ref=models.ref(model), progress=lambda stage: stage_bar(f"{label} · {stage}"))


def _win_tie_loss(first: BenchResult, now: BenchResult) -> dict[str, dict[str, dict[str, int]]]:
    """Per suite and category: items the candidate gets right and round 0 did not (win), the reverse (loss)."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for suite, before in first.correct.items():
        cats: dict[str, dict[str, int]] = {}
        for item, was in before.items():
            is_ = now.correct[suite].get(item, False)
            key = "win" if is_ and not was else "loss" if was and not is_ else "tie"
            c = cats.setdefault(first.categories[suite][item], {"win": 0, "tie": 0, "loss": 0})
            c[key] += 1
        out[suite] = cats
    return out


def _uplift(first: BenchResult, now: BenchResult) -> dict[str, dict[str, Any]]:
    from hone.bench.stats import paired_compare

    out = {}
    for suite in first.correct:
        c = paired_compare(first.correct[suite], now.correct[suite])
        out[suite] = {"diff": c["difference"], "ci": list(c["ci95"]), "p_value": c["mcnemar_p"],
                      "improved": c["improved"], "regressed": c["regressed"], "n": c["n"]}
    return out


def _judge_totals(run_dir: Path) -> dict[str, Any]:
    from hone.judge.cache import JudgeCache
    from hone.judge.factory import default_cache_path

    path = default_cache_path(run_dir)
    if not Path(path).exists():
        return {"calls": 0, "usd": 0.0}
    cache = JudgeCache(path)
    try:
        return cache.totals()
    finally:
        cache.close()


def _config_json(config: LoopConfig) -> dict[str, Any]:
    """The experiment's settings; how a run treats earlier output (`restart`) is the command's, not the config's."""
    return json.loads(config.model_dump_json(exclude={"train": {"restart", "overwrite"}}))


def _config_guard(config: LoopConfig, run_dir: Path) -> None:
    """A run directory belongs to one loop config; resuming with another would mix two experiments."""
    path = run_dir / "loop_config.json"
    now = _config_json(config)
    if path.exists():
        before = json.loads(path.read_text())
        for settings in (before, now):  # a raised budget or other limits may resume the same experiment
            for key in LoopJudgeConfig.RESUMABLE:
                settings.get("judge_config", {}).pop(key, None)
        if before != now:
            keys = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
            raise HoneError(f"{path}: this run directory holds a loop with another config ({', '.join(keys)} "
                            "differ); use another run directory")
    else:
        write_text_atomic(path, json.dumps(now, indent=2) + "\n")


def _check_judge(config: LoopConfig) -> None:
    """Build the judge once before round 0: a missing key, a dead server or a budget that cannot be enforced
    (no price for the model) stops the loop now, not after an hour of benchmarking and sampling."""
    if config.judge == "verifier":
        return
    _judge_setup(config, None).make(None)


def run_loop(config: LoopConfig, run_dir: str | os.PathLike, say: Say = print, *,
             restart: bool = False) -> dict[str, Any]:
    """Run (or resume) every round; return the summary also written to `run_dir/summary.json`. `restart` goes to
    every stage: output an earlier run made with other inputs or settings is discarded and made again."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_heldout_is_separate(config)
    check_sandbox(config, say)
    _config_guard(config, run_dir)
    _check_judge(config)
    models = _Models(config)
    from hone.generate.registry import check_model

    check_model(models.config, config.base_model)  # vLLM missing, no server program: one line before round 0
    try:
        return _rounds(config, run_dir, models, say, restart)
    finally:
        models.close()  # a server Hone started stops with the loop, however the loop ends


def _rounds(config: LoopConfig, run_dir: Path, models: _Models, say: Say, restart: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    say(f"round 0: benchmarking {config.base_model} on the held-out suites")
    first = _bench(config, models, config.base_model, _round_dir(run_dir, 0) / "bench", restart)
    rounds: list[dict[str, Any]] = [{
        "round": 0, "model": str(config.base_model), "candidate": str(config.base_model), "promoted": True,
        "reason": "starting model", "suites": first.figures(), "seconds": round(time.perf_counter() - t0, 1),
    }]
    summary = {"description": config.description, "config": _config_json(config), "rounds": rounds}
    _say_round(say, rounds[0])
    current, current_bench = config.base_model, first
    for r in range(1, config.rounds + 1):
        t_round = time.perf_counter()
        rd = _round_dir(run_dir, r)
        judge_before = _judge_totals(run_dir)
        say(f"round {r}: sampling the training prompts with {current}")
        gens, verdicts, sample_stats = _sample(config, models, current, rd, run_dir, r, say, restart)
        critiques, critique_stats = _critique(config, models, current, rd, r, gens, verdicts, restart)
        data, data_stats = _data(config, rd, r, gens, verdicts, critiques, restart)
        judge_after = _judge_totals(run_dir)
        row: dict[str, Any] = {
            "round": r, "train_prompts": sample_stats, "critique": critique_stats, "data": data_stats,
            "judge": {"name": config.judge, "calls": judge_after["calls"] - judge_before["calls"]
                      if config.judge != "verifier" else sample_stats["samples"],
                      "cost_usd": round(judge_after["usd"] - judge_before["usd"], 6)},
        }
        if data_stats["rows"] == 0:
            row.update(model=str(current), candidate=None, promoted=False, suites=current_bench.figures(),
                       reason="no training rows this round (nothing verified); the model stays")
        else:
            say(f"  training a LoRA on {data_stats['rows']} rows ({data_stats['source']})")
            models.close()  # the GPU memory of the generation engine goes to training
            candidate = _train_merge(config, current, rd, data, say, restart)
            say(f"  benchmarking the candidate {candidate}")
            bench = _bench(config, models, candidate, rd / "bench", restart)
            from hone.gate import decide
            from hone.report.model_card import write_model_card

            decision = decide(current_bench.correct, bench.correct, config.gate.tolerance, config.gate.require_gain)
            write_text_atomic(rd / "gate.json", json.dumps(decision, indent=2) + "\n")
            row.update(candidate=str(candidate), promoted=decision["promoted"], reason=decision["reason"],
                       suites=bench.figures(), vs_previous=decision["suites"],
                       uplift_vs_round0=_uplift(first, bench), win_tie_loss=_win_tie_loss(first, bench))
            if decision["promoted"]:
                current, current_bench = candidate, bench
                write_model_card(candidate, bench=bench.report, gate=decision, run_dir=run_dir)
            row["model"] = str(current)
        row["seconds"] = round(time.perf_counter() - t_round, 1)
        rounds.append(row)
        _say_round(say, row)
        write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    summary["final_model"] = str(current)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    from hone.report.build import write_reports

    write_reports(run_dir)
    return summary


def _say_round(say: Say, row: dict[str, Any]) -> None:
    parts = []
    for suite, s in sorted(row["suites"].items()):
        ci = s["ci"] or [0, 0]
        part = f"{suite} {100 * s['accuracy']:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
        up = (row.get("uplift_vs_round0") or {}).get(suite)
        if up:
            part += f", {100 * up['diff']:+.1f} pts vs round 0 [{100 * up['ci'][0]:+.1f}, {100 * up['ci'][1]:+.1f}]"
        parts.append(part)
    say(f"round {row['round']}: " + "; ".join(parts) + (f" — {row['reason']}" if row["round"] else ""))
