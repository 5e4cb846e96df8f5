"""`hone loop`: rounds of improve (sample -> data -> train, or what the round's kind does) -> merge + verify ->
bench -> gate.

Each round starts from the model promoted so far. Everything a round makes lives under `round-N/`
(hone.round.RoundLayout) with its manifests, so a killed loop resumes at the stage it was in and redoes no finished
item. How a round trains is its kind's (hone.round_kinds); what every round shares is here: the merge with proof,
the benchmark, and the gate, which compares the candidate with the promoted model on the same held-out items,
paired, and promotes only a model that did not regress beyond the tolerance on any suite. The typed
`LoopSummary` (summary.json) and the reports are rebuilt from the files on disk.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hone.atomic import write_text_atomic
from hone.errors import HoneError
from hone.loop_config import LoopConfig, LoopJudgeConfig
from hone.progress import Say, stage_bar, step_bars
from hone.records import read_tasks
from hone.round import LOOP_CONFIG, SUMMARY, JudgeUse, LoopSummary, RoundLayout, RoundRecord

if TYPE_CHECKING:
    from hone.bench.run import BenchResult
    from hone.generate.registry import EnginePool


def check_sandbox(config: LoopConfig, say: Say) -> None:
    """With code tasks to grade, refuse before round 0 where the sandbox cannot hold (config `sandbox: strict`)."""
    from hone.grade.sandbox import require_for

    iso = require_for([t for p in (config.train_tasks, *config.heldout.values()) for t in read_tasks(p)],
                      config.sandbox)
    if iso is not None:
        say(f"sandbox: {config.sandbox}: {iso.describe()}")


def check_heldout_is_separate(config: LoopConfig) -> None:
    """No training task may overlap a held-out suite (an id, a prompt, a shared n-gram: hone.overlap), or the
    uplift measured on it would be a lie."""
    from hone.overlap import OverlapIndex, item_texts

    index = OverlapIndex({name: read_tasks(path) for name, path in config.heldout.items()}, config.data.ngram)
    for t in read_tasks(config.train_tasks):
        if (hit := index.hit(item_texts(t), t.id)) is not None:
            name, item = hit
            raise HoneError(f"{config.heldout[name]}: held-out suite {name!r} item {item!r} is also a training task "
                            f"({t.id!r}); an uplift measured on it would not be held out")


def _config_json(config: LoopConfig) -> dict[str, Any]:
    """The experiment's settings; how a run treats earlier output (`restart`) is the command's, not the config's."""
    return json.loads(config.model_dump_json(exclude={"train": {"restart", "overwrite"}}))


def _config_guard(config: LoopConfig, run_dir: Path) -> None:
    """A run directory belongs to one loop config; resuming with another would mix two experiments."""
    path = run_dir / LOOP_CONFIG
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


def run_loop(config: LoopConfig, run_dir: str | os.PathLike, say: Say = print, *,
             restart: bool = False) -> LoopSummary:
    """Run (or resume) every round; return the summary also written to `run_dir/summary.json`. `restart` goes to
    every stage: output an earlier run made with other inputs or settings is discarded and made again."""
    from hone.generate.registry import EnginePool, check_model

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_heldout_is_separate(config)
    check_sandbox(config, say)
    if config.round_kind == "grpo":  # vLLM rollouts without a GPU or vllm: one line now, not after round 0
        from hone.train.grpo import check_rollout_engine

        check_rollout_engine(config.train)
    _config_guard(config, run_dir)
    if config.judge != "verifier":  # a missing key, a dead server or a budget that cannot be enforced: now,
        config.judge_setup(None).make(None)  # not after an hour of benchmarking and sampling
    engines = EnginePool(config.generate if config.generate.device or not config.device else
                         config.generate.model_copy(update={"device": config.device}))
    check_model(engines.config, config.base_model)  # vLLM missing, no server program: one line before round 0
    try:
        return _rounds(config, run_dir, engines, say, restart)
    finally:
        engines.close()  # a server Hone started stops with the loop, however the loop ends


def _rounds(config: LoopConfig, run_dir: Path, engines: EnginePool, say: Say, restart: bool) -> LoopSummary:
    from hone.judge.cache import judge_spend

    t0 = time.perf_counter()
    say(f"round 0: benchmarking {config.base_model} on the held-out suites")
    first = _bench(config, engines, config.base_model, RoundLayout(run_dir, 0), restart)
    start = RoundRecord(round=0, kind="start", model=str(config.base_model), candidate=str(config.base_model),
                        promoted=True, reason="starting model", suites=first.report.figures(),
                        seconds=round(time.perf_counter() - t0, 1))
    summary = LoopSummary(description=config.description, config=_config_json(config), rounds=[start])
    _say_round(say, start)
    current, current_bench = config.base_model, first
    for r in range(1, config.rounds + 1):
        t_round, spent = time.perf_counter(), judge_spend(run_dir)
        layout = RoundLayout(run_dir, r)
        record, candidate, bench = _round(config, layout, engines, current, current_bench, first, say, restart)
        now = judge_spend(run_dir)
        calls = now["calls"] - spent["calls"] if config.judge != "verifier" else record.verifier_calls
        record.judge = JudgeUse(name=config.judge, calls=calls, cost_usd=round(now["usd"] - spent["usd"], 6))
        record.seconds = round(time.perf_counter() - t_round, 1)
        if record.promoted:
            current, current_bench = candidate, bench
        summary.rounds.append(record)
        _say_round(say, record)
        summary.write(run_dir / SUMMARY)
    summary.final_model = str(current)
    summary.seconds = round(time.perf_counter() - t0, 1)
    summary.write(run_dir / SUMMARY)
    from hone.report.build import write_reports

    write_reports(run_dir)
    return summary


def _round(config: LoopConfig, layout: RoundLayout, engines: EnginePool, current: Path, current_bench: BenchResult,
           first: BenchResult, say: Say, restart: bool) -> tuple[RoundRecord, Path | None, BenchResult | None]:
    """One round: the kind's improvement, then merge, bench and gate. Returns its record, candidate and bench."""
    from hone.gate import uplift, win_tie_loss
    from hone.round_kinds import RoundContext, improve

    made = improve(RoundContext(config, layout, current, engines, say, restart))
    record = RoundRecord(round=layout.round, kind=config.round_kind, model=str(current), promoted=False,
                         reason=made.reason, suites=current_bench.report.figures(), **made.reports())
    if made.adapter is None:
        return record, None, None
    candidate = _merge(config, current, made.adapter, layout, say, restart)
    say(f"  benchmarking the candidate {candidate}")
    bench = _bench(config, engines, candidate, layout, restart)
    decision = config.gate.decide(current_bench, bench)
    write_text_atomic(layout.gate, json.dumps(decision, indent=2) + "\n")
    if decision["promoted"]:
        from hone.report.model_card import write_model_card

        write_model_card(candidate, bench=bench.report, gate=decision, run_dir=layout.run_dir)
    record = record.model_copy(update=dict(
        candidate=str(candidate), promoted=decision["promoted"], reason=decision["reason"],
        suites=bench.report.figures(), vs_previous=decision["suites"], model=str(candidate if decision["promoted"]
                                                                                  else current),
        guards=decision.get("guards"), stop_rates=decision.get("stop_rates"),
        uplift_vs_round0=uplift(first.correct, bench.correct),
        win_tie_loss=win_tie_loss(first.correct, bench.correct, first.categories)))
    return record, candidate, bench


def _merge(config: LoopConfig, model: Path, adapter: Path, layout: RoundLayout, say: Say, restart: bool) -> Path:
    """The adapter merged into exactly the model it was trained on, and verified against adapter-on-base."""
    from hone.merge.run import MergeConfig, run_merge

    # QLoRA (train.quantize_base) merges into the dequantized weights the adapter saw, with the same proof.
    with stage_bar(f"round {layout.round} · merge + verify") as bar:
        merged = run_merge(MergeConfig(dequantized_base=config.train.quantize_base is not None, restart=restart),
                           model, adapter, layout.model, progress=bar)
    logits = merged.report.verification.logits
    say(f"  merged into {model}: verified clean (max |logit diff| {logits.max_abs_logit_diff.value:.2e}, "
        f"top-1 agreement {logits.top1_agreement.value:.3f})")
    return merged.outputs["model"]


def _bench(config: LoopConfig, engines: EnginePool, model: Path, layout: RoundLayout, restart: bool) -> BenchResult:
    from hone.bench.run import BenchConfig, run_bench
    from hone.generate.base import GenParams

    bench = BenchConfig(params=GenParams(max_new_tokens=config.bench.max_new_tokens,
                                         batch_size=config.bench.batch_size), sandbox=config.sandbox, restart=restart)
    specs = [f"{name}={path}" for name, path in config.heldout.items()]
    return run_bench(bench, model, specs, layout.bench, generator=engines.lazy(model, layout.dir),
                     engine_ref=engines.ref(model), progress=step_bars(f"round {layout.round}"))


def _say_round(say: Say, row: RoundRecord) -> None:
    parts = []
    for suite, s in sorted(row.suites.items()):
        ci = s.ci or [0, 0]
        part = f"{suite} {100 * s.accuracy:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
        up = (row.uplift_vs_round0 or {}).get(suite)
        if up:
            part += f", {100 * up.diff:+.1f} pts vs round 0 [{100 * up.ci[0]:+.1f}, {100 * up.ci[1]:+.1f}]"
        parts.append(part)
    say(f"round {row.round}: " + "; ".join(parts) + (f" — {row.reason}" if row.round else ""))
