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


EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "accelerate"


def test_shipped_accelerate_configs_parse():
    from accelerate.commands.config.config_args import load_config_from_file

    kinds = {f.name: str(load_config_from_file(str(f)).distributed_type) for f in EXAMPLES.glob("*.yaml")}
    assert kinds == {"ddp.yaml": "DistributedType.MULTI_GPU", "fsdp.yaml": "DistributedType.FSDP",
                     "deepspeed-zero3.yaml": "DistributedType.DEEPSPEED"}
    fsdp = load_config_from_file(str(EXAMPLES / "fsdp.yaml")).fsdp_config
    assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # the saved adapter is plain safetensors for merge
    zero3 = load_config_from_file(str(EXAMPLES / "deepspeed-zero3.yaml")).deepspeed_config
    assert zero3["zero_stage"] == 3 and zero3["zero3_save_16bit_model"] is True


@pytest.mark.slow
def test_hone_train_launches_itself_with_the_shipped_ddp_config(tiny_model_dir, tmp_path):
    """`--launcher accelerate`: Hone runs `accelerate launch` itself (two gloo ranks here, from ddp.yaml)."""
    data = tmp_path / "parity.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Is {n} even?", "completion": "yes" if n % 2 == 0 else "no"})
                            + "\n" for n in range(64)))
    out = tmp_path / "lora"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "hone.cli", "train", "--base", str(tiny_model_dir), "--data",
                           str(data), "-o", str(out), "--max-steps", "4", "--batch-size", "4", "--launcher",
                           "accelerate", "--num-processes", "2", "--accelerate-config", str(EXAMPLES / "ddp.yaml")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote adapter to") == 1
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["training"]["processes"] == 2 and lineage["config"]["launcher"] == "accelerate"
    assert "hone-progress 4 4" in (tmp_path / "lora.train.log").read_text()
