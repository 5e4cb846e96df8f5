"""`hone status`: where a loop or demo run stands, read from the files on disk alone.

Nothing here talks to the running process: every stage writes `<output>.manifest.json` when it starts and when
it finishes, and appends finished items to `<output>.partial` (hone.records.PartialJsonl). So the same reading
works from another terminal while the run goes on, and after a crash or a kill. `command.json`, written when a
run starts, says how to resume it and which process ran it (alive or gone).
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Any

from hone.atomic import write_text_atomic
from hone.bench.report import SuiteFigures
from hone.grade.gap import RISE_POINTS, ScorerGap, rising_gap
from hone.judge.cache import judge_spend
from hone.loop_config import LoopConfig
from hone.round import (COMMAND, LOOP_CONFIG, SUMMARY, DemoSummary, LoopSummary, RoundLayout, RoundRecord,
                        read_loop_config, read_run, read_summary)
from hone.runs import read_manifest


def record_command(run_dir: str | os.PathLike, argv: list[str] | None = None) -> None:
    """Note how this run was started (arguments, folder) and which process runs it now, so `hone status` can
    name the resume command. The first command is kept: a later one may be a mistake the run refuses."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    first = _read_json(run_dir / COMMAND) or {}
    body = {"argv": first.get("argv") or ["hone", *(sys.argv[1:] if argv is None else argv)],
            "cwd": first.get("cwd") or os.getcwd(), "pid": os.getpid(), "host": socket.gethostname(),
            "started": time.time()}
    write_text_atomic(run_dir / COMMAND, json.dumps(body, indent=1) + "\n")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # absent, or being replaced this very moment: report what else is known


def _lines(path: Path) -> int:
    """Complete lines (a torn last line from a kill is not an item)."""
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


def _expected(manifest: dict[str, Any]) -> int | None:
    """How many items the stage will write, from the inputs its manifest names."""
    inputs, config = manifest.get("inputs") or {}, manifest.get("config") or {}
    if "generations" in inputs:  # grade, judge: one verdict per generation
        return _lines(Path(inputs["generations"]["path"]))
    if "tasks" in inputs and "params" in config:  # generate: n answers per task
        return _lines(Path(inputs["tasks"]["path"])) * int(config["params"].get("n", 1))
    return None


def file_stage(name: str, out: Path) -> dict[str, Any]:
    """State of one stage that writes `out`: done, running (items so far of the total), or not started."""
    manifest = read_manifest(out)
    partial = out.with_name(out.name + ".partial")
    stage: dict[str, Any] = {"stage": name, "path": str(out)}
    if manifest and manifest.get("status") == "complete" and out.exists():
        return {**stage, "state": "done", "counts": manifest.get("counts") or {}}
    if partial.exists() or (manifest and manifest.get("status") == "running"):
        stage.update(state="running", done=_lines(partial) if partial.exists() else 0,
                     total=_expected(manifest) if manifest else None)
        if partial.exists():
            stage["last_write_s"] = round(time.time() - partial.stat().st_mtime, 1)
        return stage
    if out.exists():  # a plain output written in one go (write_records), no manifest
        return {**stage, "state": "done", "counts": {"rows": _lines(out)}}
    return {**stage, "state": "not started"}


def _train_stage(layout: RoundLayout, max_steps: int | None) -> dict[str, Any]:
    adapter = layout.adapter
    stage: dict[str, Any] = {"stage": "train", "path": str(adapter)}
    lineage = layout.train_report()
    if lineage:
        t = lineage.training
        return {**stage, "state": "done", "counts": {"steps": t.steps, "final_loss": t.final_loss}}
    if not adapter.exists():
        return {**stage, "state": "not started"}
    steps = [int(p.name.split("-")[-1]) for p in (adapter / "checkpoints").glob("checkpoint-*")
             if p.name.split("-")[-1].isdigit()]
    if not steps:  # training writes no count until its first checkpoint (train.save_steps)
        return {**stage, "state": "running"}
    return {**stage, "state": "running", "done": max(steps), "total": max_steps, "unit": "steps checkpointed"}


def _merge_stage(layout: RoundLayout) -> dict[str, Any]:
    model = layout.model
    stage: dict[str, Any] = {"stage": "merge + verify", "path": str(model)}
    report = layout.merge_report()
    if report and report.status == "verified" and report.verification:
        logits = report.verification.logits
        return {**stage, "state": "done", "counts": {k: getattr(logits, k).value for k in logits.model_fields}}
    if report or model.exists() or model.with_name(model.name + ".partial").exists():
        return {**stage, "state": "running"}
    return {**stage, "state": "not started"}


def _bench_stages(layout: RoundLayout, suites: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    stages = []
    for suite in suites:
        gens, verdicts = layout.bench_suite(suite)
        stages.append(file_stage(f"bench generate {suite}", gens))
        stages.append(file_stage(f"bench grade {suite}", verdicts))
    report = layout.bench_report()
    figures = report.figures() if report else {}
    return stages, {name: _accuracy(f) for name, f in figures.items()}


def _accuracy(f: SuiteFigures) -> dict[str, Any]:
    return {"accuracy": f.accuracy, "ci": f.ci, "n": f.n, "stop_rate": f.stop_rate}


def _sample_stages(layout: RoundLayout, config: LoopConfig) -> list[dict[str, Any]]:
    judge = "grade" if config.judge == "verifier" else "judge"
    stages = []
    attempts = 1 + config.sample.resample_unsolved
    merged = layout.samples.exists()
    for a in range(attempts):
        gen, ver = layout.sample_pass(a)
        if a and merged and not gen.exists() and not gen.with_name(gen.name + ".partial").exists():
            break  # every prompt was solved earlier: this pass was not needed
        stages.append(file_stage(f"sample pass {a}" if attempts > 1 else "sample", gen))
        stages.append(file_stage(f"{judge} pass {a}" if attempts > 1 else judge, ver))
    return stages


def _round_status(layout: RoundLayout, config: LoopConfig, finished: RoundRecord | None) -> dict[str, Any]:
    """`finished` is the round's record in summary.json, written once the round is over (None before)."""
    r = layout.round
    stages: list[dict[str, Any]] = []
    no_rows = False
    if r and config.round_kind == "grpo":  # online RL trains on the round's prompts; no sampling or data stage
        stages += [file_stage("prompts", layout.prompts), _train_stage(layout, config.train.max_steps),
                   _merge_stage(layout)]
    elif r:
        stages += _sample_stages(layout, config)
        if config.improve in ("critique", "both"):
            stages.append(file_stage("critique", layout.critiques))
        stages.append(file_stage("data", layout.sft))
        no_rows = stages[-1]["state"] == "done" and _lines(layout.sft) == 0
        stages.append(_train_stage(layout, config.train.max_steps))
        stages.append(_merge_stage(layout))
    bench_stages, accuracy = _bench_stages(layout, sorted(config.heldout))
    stages += bench_stages
    row: dict[str, Any] = {"round": r, "stages": stages, "accuracy": accuracy}
    gate = layout.gate_decision()
    if r:
        stages.append({"stage": "gate", "state": "done", "counts": {"promoted": gate.promoted}} if gate
                      else {"stage": "gate", "state": "not started"})
        if no_rows:  # nothing verified: the round keeps the model, nothing is trained or benchmarked
            for s in stages:
                if s["state"] == "not started" and s["stage"] != "data":
                    s["state"] = "skipped (no training rows)"
    if finished is not None:
        row["gate"] = {"promoted": finished.promoted, "reason": finished.reason}
        gap = finished.train_prompts.scorer_gap if finished.train_prompts else None
        if gap is not None:
            row["scorer_gap"] = {"share": gap.share, "answers": gap.answers, "verifier_only": gap.verifier_only,
                                 "strict_only": gap.strict_only}
        if not accuracy:
            accuracy.update({k: _accuracy(f) for k, f in finished.suites.items()})
        row["state"] = "done"
    else:
        states = {s["state"].split(" (")[0] for s in stages}
        row["state"] = ("not started" if states == {"not started"} else
                        "done" if states <= {"done", "skipped"} else "running")
    return row


def _alive(cmd: dict[str, Any] | None) -> bool | None:
    """Whether the process that started the run still runs (None: unknown, another machine or no record)."""
    import psutil

    if not cmd or cmd.get("host") != socket.gethostname() or not cmd.get("pid"):
        return None
    try:
        created = psutil.Process(int(cmd["pid"])).create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return None
    # A pid can be reused: a process created after the run was recorded is another one.
    return created <= float(cmd.get("started", created)) + 1


def resume_command(run_dir: Path, fallback: list[str]) -> str:
    cmd = _read_json(run_dir / COMMAND)
    argv = cmd["argv"] if cmd and cmd.get("argv") else fallback
    line = shlex.join(argv)
    if cmd and cmd.get("cwd") and Path(cmd["cwd"]).resolve() != Path.cwd().resolve():
        line = f"cd {shlex.quote(cmd['cwd'])} && {line}"
    return line


def _gap(record: RoundRecord | None) -> ScorerGap | None:
    return record.train_prompts.scorer_gap if record is not None and record.train_prompts else None


def gap_text(share: float | None, rising: bool) -> str:
    """The scorer gap of a round's samples in words, with the warning when it rose since the round before."""
    if share is None:
        return ""
    text = f"scorer gap {100 * share:.1f}% of its samples"
    if rising:
        text += (f" (RISING by {RISE_POINTS:g}+ points: the model may be learning its grader's blind spots; read "
                 "the examples in the round's summary)")
    return text


GAP_HEAD = ["round", "scorer gap of the samples", "verifier passed, strict failed", "strict passed, verifier failed",
            "held-out scorer gap", "flag"]


def gap_rows(summary: LoopSummary) -> list[list[Any]]:
    """Per round: the scorer gap of its samples (both directions), the held-out suites' gap, and the rising flag."""
    rows, before = [], None
    for r in summary.rounds:
        gap = _gap(r)
        held = ", ".join(f"{k} {100 * f.scorer_gap:.1f}%" for k, f in sorted(r.suites.items())
                         if f.scorer_gap is not None)
        if gap is None and not held:
            continue
        rows.append([r.round, f"{100 * gap.share:.1f}% of {gap.answers}" if gap else "—",
                     gap.verifier_only if gap else "—", gap.strict_only if gap else "—", held or "—",
                     "RISING" if rising_gap(before, gap) else ""])
        before = gap if gap is not None else before
    return rows


def loop_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Every round's stages, the promoted model, accuracies so far with CIs, judge spend, the resume command."""
    from hone.errors import HoneError

    run_dir = Path(run_dir)
    config = read_loop_config(run_dir)
    if config is None:
        raise HoneError(f"{run_dir}: not a loop or demo run directory (no loop_config.json, no arms)")
    summary = read_summary(run_dir)
    done = {record.round: record for record in (summary.rounds if summary else [])}
    rounds = [_round_status(RoundLayout(run_dir, r), config, done.get(r)) for r in range(config.rounds + 1)]
    for row, before in zip(rounds[2:], rounds[1:]):
        if rising_gap(_gap(done.get(before["round"])), _gap(done.get(row["round"]))):
            row["scorer_gap"]["rising"] = True
    promoted, model = 0, str(config.base_model)
    for row in rounds[1:]:
        if (row.get("gate") or {}).get("promoted"):
            promoted, model = row["round"], str(RoundLayout(run_dir, row["round"]).model)
    finished = summary is not None and summary.final_model is not None and all(r["state"] == "done" for r in rounds)
    cmd = _read_json(run_dir / COMMAND)
    return {"kind": "loop", "run_dir": str(run_dir), "finished": finished,
            "process": {"pid": (cmd or {}).get("pid"), "alive": _alive(cmd)},
            "promoted": {"round": promoted, "model": model}, "rounds": rounds, "judge": judge_spend(run_dir),
            "resume": None if finished else
            resume_command(run_dir, ["hone", "loop", "--config", str(run_dir / LOOP_CONFIG), "-o", str(run_dir)])}


def _demo_summary(run_dir: Path) -> DemoSummary | None:
    """The demo's summary.json, written once both arms are done (None before)."""
    from hone.errors import HoneError

    try:
        return read_run(run_dir)[2] if (run_dir / SUMMARY).exists() else None
    except HoneError:
        return None  # being replaced this very moment


def run_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Status of a `hone loop` run directory, or of a `hone demo` one (base model, then one loop per arm)."""
    from hone.errors import HoneError

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HoneError(f"{run_dir}: no such run directory")
    if (run_dir / LOOP_CONFIG).exists():
        return loop_status(run_dir)
    arms = sorted(p.parent.name for p in run_dir.glob("*/loop.yaml"))
    if not arms and not (run_dir / "base").exists():
        raise HoneError(f"{run_dir}: not a loop or demo run directory (no loop_config.json, no arms)")
    base_done = (run_dir / "base" / "model" / "config.json").exists()
    chunks = sorted((run_dir / "base").glob("chunk-*"))
    out: dict[str, Any] = {"kind": "demo", "run_dir": str(run_dir),
                           "base": {"state": "done" if base_done else "running" if chunks else "not started",
                                    "chunks": len(chunks)},
                           "arms": {}}
    for arm in arms:
        if (run_dir / arm / LOOP_CONFIG).exists():
            out["arms"][arm] = loop_status(run_dir / arm)
        else:
            out["arms"][arm] = {"kind": "loop", "finished": False, "rounds": [], "state": "not started"}
    demo = _demo_summary(run_dir)
    out["finished"] = demo is not None and all(a["finished"] for a in out["arms"].values())
    cmd = _read_json(run_dir / COMMAND)
    out["process"] = {"pid": (cmd or {}).get("pid"), "alive": _alive(cmd)}
    fallback = ["hone", "demo", "-o", str(run_dir), "--model", demo.model if demo else "tiny",
                "--seed", str(demo.seed if demo else 0), "--size", demo.size if demo else "full"]
    out["resume"] = None if out["finished"] else resume_command(run_dir, fallback)
    return out


def _acc_text(accuracy: dict[str, Any]) -> str:
    parts = []
    for suite, a in sorted(accuracy.items()):
        if a.get("accuracy") is None:
            continue
        ci = a.get("ci") or [a["accuracy"], a["accuracy"]]
        stops = f", stops {100 * a['stop_rate']:.0f}%" if a.get("stop_rate") is not None else ""
        parts.append(f"{suite} {100 * a['accuracy']:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}] (n={a.get('n')}{stops})")
    return "; ".join(parts)


def _stage_text(s: dict[str, Any]) -> str:
    if s["state"] == "running":
        total = s.get("total")
        count = f"{s.get('done', 0)}/{total}" if total else f"{s.get('done', 0)}"
        text = f"running: {count} {s.get('unit', 'items')}"
        if "last_write_s" in s:
            text += f" (last written {s['last_write_s']:.0f} s ago)"
        return text
    if s["state"] == "done":
        counts = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                           for k, v in (s.get("counts") or {}).items() if k in _SHOWN)
        return f"done ({counts})" if counts else "done"
    return s["state"]


_SHOWN = ("generations", "pass", "fail", "error", "final", "rows", "attempts", "steps", "final_loss",
          "max_abs_logit_diff", "top1_agreement", "promoted")


def _loop_lines(st: dict[str, Any], indent: str = "") -> list[str]:
    lines = [f"{indent}promoted model: round {st['promoted']['round']} ({st['promoted']['model']})"]
    for row in st["rounds"]:
        head = f"{indent}round {row['round']}: {row['state']}"
        acc = _acc_text(row["accuracy"])
        if acc:
            head += f" — {acc}"
        if row.get("gate"):
            head += f" — {row['gate']['reason']}"
        if row.get("scorer_gap"):
            head += " — " + gap_text(row["scorer_gap"]["share"], row["scorer_gap"].get("rising", False))
        lines.append(head)
        if row["state"] == "running":
            width = max(len(s["stage"]) for s in row["stages"])
            lines += [f"{indent}  {s['stage']:<{width}}  {_stage_text(s)}" for s in row["stages"]]
    j = st.get("judge") or {}
    if j.get("calls") is not None:
        lines.append(f"{indent}judge: {j['calls']} paid calls, ${j['usd']:.4f}"
                     + (f" ({j['calls_of_unknown_cost']} of unknown cost)" if j.get("calls_of_unknown_cost") else ""))
    return lines


def _process_text(st: dict[str, Any]) -> str:
    if st["finished"]:
        return "finished"
    alive, pid = st["process"].get("alive"), st["process"].get("pid")
    if alive:
        return f"running (process {pid})"
    if alive is False:
        return f"stopped: process {pid} is gone (killed or crashed); finished items are kept"
    return "not finished (no process record on this machine)"


def render_status(st: dict[str, Any]) -> str:
    """The status as lines a person reads in a terminal."""
    lines = [f"{st['kind']} run {st['run_dir']}: {_process_text(st)}"]
    if st["kind"] == "loop":
        lines += _loop_lines(st)
    else:
        b = st["base"]
        lines.append(f"base model (supervised start): {b['state']}" + (f", {b['chunks']} chunk(s)" if b["chunks"] else ""))
        for arm, a in st["arms"].items():
            lines.append(f"arm {arm}: " + ("finished" if a.get("finished") else a.get("state", "not finished")))
            if a.get("rounds"):
                lines += _loop_lines(a, indent="  ")
    if st.get("resume"):
        lines.append(f"resume: {st['resume']}")
    return "\n".join(lines)
