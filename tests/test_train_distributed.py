"""`hone train` under `accelerate launch`, two processes on CPU (gloo): the multi-process path needs no code of ours."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from hone.train.data import read_conversations, tokenize

ACCELERATE = Path(sys.executable).with_name("accelerate")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_train_one_model(tiny_model_dir, tiny_tokenizer, tmp_path):
    data = tmp_path / "parity.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Is {n} even?", "completion": "yes" if n % 2 == 0 else "no"})
                            + "\n" for n in range(64)))
    out = tmp_path / "ddp"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    cmd = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
           "--main_process_port", str(free_port()),
           "-m", "hone.cli", "train", "--base", str(tiny_model_dir), "--data", str(data), "-o", str(out),
           "--method", "full", "--max-steps", "4", "--batch-size", "4", "--lr", "1e-3"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote model to") == 1  # only the main process reports and writes
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["training"]["processes"] == 2 and lineage["training"]["steps"] == 4
    # Both ranks fed the optimizer: 2 processes x 4 rows x 4 steps = 32 rows, more than one process could see.
    rows, _ = tokenize(tiny_tokenizer, read_conversations(data), max_length=None)
    lengths = sorted(len(r["input_ids"]) for r in rows)
    assert lineage["training"]["tokens"] >= 32 * lengths[0] > 16 * lengths[-1]
    weights = load_file(out / "model.safetensors")
    base = load_file(tiny_model_dir / "model.safetensors")
    assert any((weights[k] - base[k]).abs().max() > 0 for k in base)
    assert not list(out.glob(".*partial*"))
