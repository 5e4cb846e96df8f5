"""A loop round at scale-out settings on CPU: generation through a server Hone starts (`transformers serve`) and
training in two DDP/gloo processes under `accelerate launch`; killed mid-training, it resumes from the checkpoint
and its merge verifies."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

pytestmark = pytest.mark.slow

SERVE = f"{Path(sys.executable).with_name('transformers')} serve {{model}} --host {{host}} --port {{port}} --device cpu"


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if text in cmd and p.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(cmd)
    return found


def test_server_engine_and_launched_training_round_resumes_after_a_kill(demo_run, tmp_path):
    raw = yaml.safe_load((demo_run / "control" / "loop.yaml").read_text())
    raw["rounds"] = 1
    raw["sample"]["prompts_per_round"] = 16
    raw["train"].update(max_steps=40, save_steps=10, per_device_batch_size=8, launcher="accelerate",
                        num_processes=2)
    raw["generate"] = {"backend": "server", "server_command": SERVE, "server_prompt": "messages", "concurrency": 8,
                       "startup_timeout": 120}
    cfg = tmp_path / "loop.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    args = [sys.executable, "-m", "hone.cli", "loop", "--config", str(cfg), "-o", str(run)]

    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = run / "round-1" / "adapter" / "checkpoints"
    deadline = time.time() + 400
    while time.time() < deadline and not list(checkpoints.glob("checkpoint-*/trainer_state.json")):
        assert proc.poll() is None, "the loop ended before its first training checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "round-1" / "adapter" / "lineage.json").exists()
    deadline = time.time() + 60  # the kernel tells the launcher (PR_SET_PDEATHSIG), which stops its ranks
    while time.time() < deadline and _processes_mentioning(str(run)):
        time.sleep(0.2)
    assert not _processes_mentioning(str(run))

    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    lineage = json.loads((run / "round-1" / "adapter" / "lineage.json").read_text())
    assert lineage["training"]["processes"] == 2 and lineage["training"]["steps"] == 40
    assert (lineage["training"]["resumed_from"] or "").startswith("checkpoint-")
    assert "hone-progress 40 40" in (run / "round-1" / "adapter.train.log").read_text()
    report = json.loads((run / "round-1" / "model" / "merge_report.json").read_text())
    assert report["status"] == "verified"
    summary = json.loads((run / "summary.json").read_text())
    assert [r["round"] for r in summary["rounds"]] == [0, 1]
    # Every generation went through a server Hone started and stopped: logged, and nothing left running. Two
    # starts: the base (round-0 bench, round-1 sampling) and the candidate; the resumed run starts none for the
    # stages it finds finished.
    logs = "".join(p.read_text() for p in run.glob("round-*/server.log"))
    assert logs.count("=== ") == 2 and "POST /v1/chat/completions" in logs
    assert not _processes_mentioning("transformers serve " + str(run))
