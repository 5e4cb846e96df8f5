"""`hone status` on a loop killed mid-stage, and on a finished demo: read from the files alone."""

import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

HONE = [sys.executable, "-m", "hone.cli"]


def _status(run: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*HONE, "status", str(run), *extra], capture_output=True, text=True)


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_status_of_a_loop_killed_mid_stage_names_stage_counts_and_resume(demo_run, tmp_path):
    raw = yaml.safe_load((demo_run / "control" / "loop.yaml").read_text())
    raw.update(rounds=1)
    raw["sample"].update(batch_size=4)  # 80 answers in 20 batches: the kill lands mid-stage
    cfg = tmp_path / "loop.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    log = tmp_path / "loop.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([*HONE, "loop", "--config", str(cfg), "-o", str(run)], stdout=f, stderr=f)
    partial = run / "round-1" / "samples-0.jsonl.partial"
    deadline = time.time() + 300
    while time.time() < deadline and _lines(partial) < 8 and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, log.read_text()[-2000:]
    # Frozen (alive, mid-stage) while another process asks: on an idle machine the stage would end before the
    # status command has imported Hone.
    proc.send_signal(signal.SIGSTOP)
    live = json.loads(_status(run, "--json").stdout)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert live["process"]["alive"] is True and live["resume"]

    res = _status(run, "--json")
    assert res.returncode == 0, res.stderr
    st = json.loads(res.stdout)
    assert st["process"]["alive"] is False and not st["finished"]
    r0, r1 = st["rounds"]
    assert r0["state"] == "done" and r0["accuracy"]["arithmetic"]["n"] == 30
    assert r0["accuracy"]["arithmetic"]["ci"][1] > r0["accuracy"]["arithmetic"]["accuracy"]
    running = [s for s in r1["stages"] if s["state"] == "running"]
    assert [s["stage"] for s in running] == ["sample pass 0"]
    done = _lines(partial)
    assert running[0]["done"] == done and running[0]["total"] == 80 and 8 <= done < 80
    assert {s["state"] for s in r1["stages"] if s is not running[0]} == {"not started"}
    assert st["promoted"]["round"] == 0

    text = _status(run).stdout
    line = next(line for line in text.splitlines() if "sample pass 0" in line)
    assert f"running: {done}/80 items" in line
    assert "stopped: process" in text
    resume = next(line for line in text.splitlines() if line.startswith("resume: "))[len("resume: "):]
    argv = shlex.split(resume.split(" && ")[-1])
    assert argv[:2] == ["hone", "loop"] and str(run) in argv and str(cfg) in argv

    # The printed command resumes the run to the end; then the status says finished, with nothing to resume.
    again = subprocess.run([*HONE, *argv[1:]], capture_output=True, text=True, cwd=json.loads(
        (run / "command.json").read_text())["cwd"])
    assert again.returncode == 0, again.stderr[-2000:]
    st = json.loads(_status(run, "--json").stdout)
    assert st["finished"] and st["resume"] is None and [r["state"] for r in st["rounds"]] == ["done", "done"]
    assert "<svg" in (run / "report.html").read_text()  # the loop ends with its reports and failure clusters
    assert json.loads((run / "failure_clusters.json").read_text())["items"] > 0


def test_status_of_a_finished_demo_lists_both_arms(demo_run):
    res = _status(demo_run)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0].endswith(": finished")
    assert "arm verified: finished" in res.stdout and "arm control: finished" in res.stdout
    assert "resume:" not in res.stdout


def test_status_of_a_folder_that_is_no_run_is_one_line_error(tmp_path):
    res = _status(tmp_path)
    assert res.returncode == 2 and res.stderr.startswith("error: ") and "not a loop or demo run" in res.stderr


def test_judge_spend_is_read_from_the_ledger_while_a_writer_holds_it_open(tmp_path):
    from hone.judge.base import Completion, JudgeRequest
    from hone.judge.cache import JudgeCache
    from hone.judge.factory import default_cache_path
    from hone.judge.cache import judge_spend, spend_text

    assert spend_text(tmp_path, 5.0) == "judge $0.0000 of $5.00, 0 paid calls"  # no ledger yet
    cache = JudgeCache(default_cache_path(tmp_path))  # the running loop's connection stays open
    for i, usd in enumerate((0.0125, None, 0.5)):
        req = JudgeRequest(template="grade-v1", system="s", messages=(("user", f"q{i}"),), max_tokens=8)
        cache.record(f"k{i}", "judge-model", req, Completion("PASS", 10, 2), usd, "sync")
    spend = judge_spend(tmp_path)
    assert spend["calls"] == 3 and spend["usd"] == 0.5125 and spend["calls_of_unknown_cost"] == 1
    assert spend_text(tmp_path, 5.0) == "judge $0.5125 of $5.00, 3 paid calls"
    cache.close()
