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
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from hone.atomic import write_text_atomic
from hone.runs import manifest_for

COMMAND_FILE = "command.json"


def record_command(run_dir: str | os.PathLike, argv: list[str] | None = None) -> None:
    """Note how this run was started (arguments, folder) and which process runs it now, so `hone status` can
    name the resume command. The first command is kept: a later one may be a mistake the run refuses."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    first = _read_json(run_dir / COMMAND_FILE) or {}
    body = {"argv": first.get("argv") or ["hone", *(sys.argv[1:] if argv is None else argv)],
            "cwd": first.get("cwd") or os.getcwd(), "pid": os.getpid(), "host": socket.gethostname(),
            "started": time.time()}
    write_text_atomic(run_dir / COMMAND_FILE, json.dumps(body, indent=1) + "\n")


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
    manifest = _read_json(manifest_for(out))
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


def _train_stage(adapter: Path, max_steps: int | None) -> dict[str, Any]:
    stage: dict[str, Any] = {"stage": "train", "path": str(adapter)}
    lineage = _read_json(adapter / "lineage.json")
    if lineage:
        t = lineage.get("training") or {}
        return {**stage, "state": "done", "counts": {"steps": t.get("steps"), "final_loss": t.get("final_loss")}}
    if not adapter.exists():
        return {**stage, "state": "not started"}
    steps = [int(p.name.split("-")[-1]) for p in (adapter / "checkpoints").glob("checkpoint-*")
             if p.name.split("-")[-1].isdigit()]
    if not steps:  # training writes no count until its first checkpoint (train.save_steps)
        return {**stage, "state": "running"}
    return {**stage, "state": "running", "done": max(steps), "total": max_steps, "unit": "steps checkpointed"}


def _merge_stage(model: Path) -> dict[str, Any]:
    stage: dict[str, Any] = {"stage": "merge + verify", "path": str(model)}
    report = _read_json(model / "merge_report.json")
    if report and report.get("status") == "verified":
        return {**stage, "state": "done", "counts": merge_figures(report)}
    if report or model.exists() or model.with_name(model.name + ".partial").exists():
        return {**stage, "state": "running"}
    return {**stage, "state": "not started"}


def merge_figures(report: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a merge verification (merge_report.json)."""
    logits = (report.get("verification") or {}).get("logits") or {}
    return {k: v["value"] for k, v in logits.items() if isinstance(v, dict) and "value" in v}


def _bench_stages(bench: Path, suites: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    stages = []
    for suite in suites:
        stages.append(file_stage(f"bench generate {suite}", bench / suite / "generations.jsonl"))
        stages.append(file_stage(f"bench grade {suite}", bench / suite / "verdicts.jsonl"))
    report = _read_json(bench / "bench.json") or {}
    accuracy = {}
    for name, entry in (report.get("suites") or {}).items():
        acc = entry.get("accuracy") or {}
        accuracy[name] = {"accuracy": acc.get("accuracy"), "ci": acc.get("ci95"), "n": acc.get("graded_tasks")}
    return stages, accuracy


def _sample_stages(rd: Path, config: dict[str, Any]) -> list[dict[str, Any]]:
    judge = "grade" if config.get("judge") == "verifier" else "judge"
    stages = []
    attempts = 1 + int((config.get("sample") or {}).get("resample_unsolved", 0))
    merged = (rd / "samples.jsonl").exists()
    for a in range(attempts):
        gen, ver = rd / f"samples-{a}.jsonl", rd / f"verdicts-{a}.jsonl"
        if a and merged and not gen.exists() and not gen.with_name(gen.name + ".partial").exists():
            break  # every prompt was solved earlier: this pass was not needed
        stages.append(file_stage(f"sample pass {a}" if attempts > 1 else "sample", gen))
        stages.append(file_stage(f"{judge} pass {a}" if attempts > 1 else judge, ver))
    return stages


def _round_status(run_dir: Path, r: int, config: dict[str, Any], suites: list[str],
                  finished: dict[str, Any] | None) -> dict[str, Any]:
    """`finished` is the round's row in summary.json, written once the round is over (None before)."""
    rd = run_dir / f"round-{r}"
    stages: list[dict[str, Any]] = []
    if r:
        stages += _sample_stages(rd, config)
        if config.get("improve") in ("critique", "both"):
            stages.append(file_stage("critique", rd / "critiques.jsonl"))
        stages.append(file_stage("data", rd / "sft.jsonl"))
        no_rows = stages[-1]["state"] == "done" and _lines(rd / "sft.jsonl") == 0
        stages.append(_train_stage(rd / "adapter", (config.get("train") or {}).get("max_steps")))
        stages.append(_merge_stage(rd / "model"))
    bench_stages, accuracy = _bench_stages(rd / "bench", suites)
    stages += bench_stages
    row: dict[str, Any] = {"round": r, "stages": stages, "accuracy": accuracy}
    gate = _read_json(rd / "gate.json")
    if r:
        stages.append({"stage": "gate", "state": "done", "counts": {"promoted": gate.get("promoted")}} if gate
                      else {"stage": "gate", "state": "not started"})
        if no_rows:  # nothing verified: the round keeps the model, nothing is trained or benchmarked
            for s in stages:
                if s["state"] == "not started" and s["stage"] != "data":
                    s["state"] = "skipped (no training rows)"
    if finished is not None:
        row["gate"] = {"promoted": bool(finished.get("promoted")), "reason": finished.get("reason")}
        if not accuracy:
            accuracy.update({k: {"accuracy": v.get("accuracy"), "ci": v.get("ci"), "n": v.get("n")}
                             for k, v in (finished.get("suites") or {}).items()})
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
    cmd = _read_json(run_dir / COMMAND_FILE)
    argv = cmd["argv"] if cmd and cmd.get("argv") else fallback
    line = shlex.join(argv)
    if cmd and cmd.get("cwd") and Path(cmd["cwd"]).resolve() != Path.cwd().resolve():
        line = f"cd {shlex.quote(cmd['cwd'])} && {line}"
    return line


def judge_spend(run_dir: Path) -> dict[str, Any]:
    """Paid judge calls and USD from the ledger, read-only (the running loop may be writing to it)."""
    from hone.judge.factory import default_cache_path

    path = Path(default_cache_path(run_dir))
    if not path.exists():
        return {"calls": 0, "usd": 0.0}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        calls, usd, unknown = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(usd), 0), COALESCE(SUM(usd IS NULL), 0) FROM ledger").fetchone()
        answers = conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    except sqlite3.Error:
        return {"calls": None, "usd": None, "note": f"{path}: could not be read"}
    finally:
        conn.close()
    return {"calls": calls, "usd": round(usd, 6), "calls_of_unknown_cost": unknown, "cached_answers": answers}


class TokenRate:
    """New tokens per second of a generation stage, from the `tokens` of the records it appends to `<out>.partial`
    (read a little at a time: a progress note, not a parse of the whole file each time)."""

    def __init__(self, out: str | os.PathLike):
        self.partial = Path(out).with_name(Path(out).name + ".partial")
        self.offset, self.tokens = 0, 0
        self.start: tuple[float, int] | None = None

    def _read(self) -> None:
        try:
            with open(self.partial, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return
        end = chunk.rfind(b"\n") + 1  # complete lines only
        for line in chunk[:end].splitlines():
            try:
                self.tokens += int(json.loads(line).get("tokens") or 0)
            except (ValueError, AttributeError):
                pass
        self.offset += end

    def __call__(self) -> str:
        self._read()
        now = time.monotonic()
        if self.start is None:  # records of an earlier attempt are not this run's speed
            self.start = (now, self.tokens)
            return ""
        t0, k0 = self.start
        return f"{(self.tokens - k0) / (now - t0):,.0f} new tokens/s" if now > t0 else ""


def spend_text(run_dir: str | os.PathLike, budget_usd: float | None) -> str:
    """Judge spend so far, for a progress bar: `judge $0.1234 of $5.00, 321 paid calls`."""
    s = judge_spend(Path(run_dir))
    if s.get("usd") is None:
        return "judge spend unknown"
    cap = f" of ${budget_usd:.2f}" if budget_usd is not None else ""
    return f"judge ${s['usd']:.4f}{cap}, {s['calls']} paid calls"


def loop_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Every round's stages, the promoted model, accuracies so far with CIs, judge spend, the resume command."""
    from hone.errors import HoneError

    run_dir = Path(run_dir)
    config = _read_json(run_dir / "loop_config.json")
    if config is None:
        raise HoneError(f"{run_dir}: not a loop or demo run directory (no loop_config.json, no arms)")
    suites = sorted(config.get("heldout") or {})
    summary = _read_json(run_dir / "summary.json") or {}
    done = {row["round"]: row for row in summary.get("rounds") or []}
    rounds = [_round_status(run_dir, r, config, suites, done.get(r)) for r in range(int(config.get("rounds", 0)) + 1)]
    promoted, model = 0, str(config.get("base_model"))
    for row in rounds[1:]:
        if (row.get("gate") or {}).get("promoted"):
            promoted, model = row["round"], str(run_dir / f"round-{row['round']}" / "model")
    finished = "final_model" in summary and all(r["state"] == "done" for r in rounds)
    cmd = _read_json(run_dir / COMMAND_FILE)
    return {"kind": "loop", "run_dir": str(run_dir), "finished": finished,
            "process": {"pid": (cmd or {}).get("pid"), "alive": _alive(cmd)},
            "promoted": {"round": promoted, "model": model}, "rounds": rounds, "judge": judge_spend(run_dir),
            "resume": None if finished else
            resume_command(run_dir, ["hone", "loop", "--config", str(run_dir / "loop_config.json"), "-o", str(run_dir)])}


def run_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Status of a `hone loop` run directory, or of a `hone demo` one (base model, then one loop per arm)."""
    from hone.errors import HoneError

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HoneError(f"{run_dir}: no such run directory")
    if (run_dir / "loop_config.json").exists():
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
        if (run_dir / arm / "loop_config.json").exists():
            out["arms"][arm] = loop_status(run_dir / arm)
        else:
            out["arms"][arm] = {"kind": "loop", "finished": False, "rounds": [], "state": "not started"}
    out["finished"] = (run_dir / "summary.json").exists() and all(a["finished"] for a in out["arms"].values())
    cmd = _read_json(run_dir / COMMAND_FILE)
    out["process"] = {"pid": (cmd or {}).get("pid"), "alive": _alive(cmd)}
    summary = _read_json(run_dir / "summary.json") or {}
    fallback = ["hone", "demo", "-o", str(run_dir), "--model", str(summary.get("model", "tiny")),
                "--seed", str(summary.get("seed", 0)),
                "--size", str(summary.get("size", "full"))]
    out["resume"] = None if out["finished"] else resume_command(run_dir, fallback)
    return out


def _acc_text(accuracy: dict[str, Any]) -> str:
    parts = []
    for suite, a in sorted(accuracy.items()):
        if a.get("accuracy") is None:
            continue
        ci = a.get("ci") or [a["accuracy"], a["accuracy"]]
        parts.append(f"{suite} {100 * a['accuracy']:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}] (n={a.get('n')})")
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
