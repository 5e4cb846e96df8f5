"""Training over several machines, simulated on one: 2 "machines" x 1 process on 127.0.0.1 (two `hone train`
launches with machine ranks 0 and 1 meeting at a c10d rendezvous, gloo on CPU) learn exactly what 2 processes on
one machine learn, and resume after a machine is killed; inside a fake Slurm allocation Hone starts the launcher on
every node with the `srun` command the sbatch example documents."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from safetensors.torch import load_file

from hone.errors import HoneError
from hone.train.cluster import expand_nodelist, placement
from hone.train.config import TrainConfig

CLUSTER = Path(__file__).resolve().parent.parent / "examples" / "cluster"
STEPS, SAVE = 40, 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def job(tiny_model_dir, tmp_path_factory):
    """The data, and the settings every run here shares (what changes is only how the processes are placed)."""
    root = tmp_path_factory.mktemp("cluster")
    data = root / "parity.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Is {n} even?", "completion": "yes" if n % 2 == 0 else "no"})
                            + "\n" for n in range(64)))
    args = ["--base", str(tiny_model_dir), "--data", str(data), "--max-steps", str(STEPS), "--batch-size", "4",
            "--save-steps", str(SAVE), "--launcher", "accelerate", "--num-processes", "2"]
    return root, args


def hone_train(job, out: Path, *extra: str) -> subprocess.Popen:
    """`hone train` in the background, its output in files (a pipe nobody reads could stall it)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    log = job[0] / f"{out.name}-{len(list(job[0].glob(out.name + '-*.err')))}.err"
    with open(log, "w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "hone.cli", "train", *job[1], "-o", str(out), *extra],
                                stdout=subprocess.DEVNULL, stderr=sink, text=True, env=env)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def machines(job, out: Path, port: int) -> list[subprocess.Popen]:
    """Machine 0 and machine 1, each one `hone train` with one worker, sharing the output folder."""
    return [hone_train(job, out, "--num-machines", "2", "--machine-rank", str(rank), "--main-process-ip",
                       "127.0.0.1", "--main-process-port", str(port)) for rank in (0, 1)]


def finish(proc: subprocess.Popen, timeout: float = 300) -> int:
    """The exit code; stderr's tail in the message of a failure."""
    code = proc.wait(timeout=timeout)
    assert code == 0, proc.log.read_text()[-3000:]  # type: ignore[attr-defined]
    return code


@pytest.fixture(scope="module")
def one_machine(job) -> Path:
    """2 processes on one machine (`accelerate launch`, gloo): the result the two machines must reproduce."""
    out = job[0] / "one-machine"
    finish(hone_train(job, out))
    return out


def assert_same_adapter(a: Path, b: Path) -> None:
    wa, wb = load_file(a / "adapter_model.safetensors"), load_file(b / "adapter_model.safetensors")
    assert wa.keys() == wb.keys() and wa
    assert all((wa[k] == wb[k]).all() for k in wa), "the adapters differ"


def _kill_tree(proc: subprocess.Popen) -> None:
    """A machine lost: its `hone train`, its launcher and its worker, all at once (SIGKILL)."""
    parent = psutil.Process(proc.pid)
    for p in [parent, *parent.children(recursive=True)]:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait()


@pytest.mark.slow
def test_two_machines_killed_and_resumed_learn_exactly_what_one_machine_learns(job, one_machine):
    """One test for both claims, as each launch costs tens of seconds on a busy machine: the two-machine run is
    killed at its first checkpoint, resumed, and must end with the one-machine adapter bit for bit."""
    out = job[0] / "two-machines"
    port = free_port()
    first, second = machines(job, out, port)
    deadline = time.time() + 300
    while not list((out / "checkpoints").glob("checkpoint-*/trainer_state.json")):
        assert first.poll() is None and second.poll() is None, "training ended before its first checkpoint"
        assert time.time() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    _kill_tree(second)
    first.wait(timeout=300)  # machine 0's worker loses its peer: the launch fails, it does not hang
    assert first.returncode == 2 and "training under accelerate failed" in first.log.read_text()
    assert not (out / "lineage.json").exists()

    for proc in machines(job, out, port):
        finish(proc)
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["training"]["steps"] == STEPS
    assert (lineage["training"]["resumed_from"] or "").startswith("checkpoint-")
    assert_same_adapter(one_machine, out)  # on CPU both the split over machines and the resume are exact
    assert not (out / "checkpoints").exists()
    assert lineage["training"]["processes"] == 2
    assert lineage["config"]["num_machines"] == 2 and lineage["config"]["machine_rank"] is None
    # Each machine logs its own launch; only machine 0's launcher hosts the rendezvous.
    assert "--machine_rank 0" in (job[0] / "two-machines.train.log").read_text()
    assert "is_host=0" in (job[0] / "two-machines.train.machine1.log").read_text()


def test_slurm_nodelists_expand_in_order():
    assert expand_nodelist("node[01-02],other") == ["node01", "node02", "other"]
    assert expand_nodelist("gpu[7,9-10]") == ["gpu7", "gpu9", "gpu10"]
    assert expand_nodelist("a-b[009-011]x") == ["a-b009x", "a-b010x", "a-b011x"]
    with pytest.raises(HoneError, match="SLURM_JOB_NODELIST"):
        expand_nodelist("rack[1-2]n[1-2]")


SLURM = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_NNODES": "2",
         "SLURMD_NODENAME": "gpu07", "SLURM_NODEID": "0", "SLURM_PROCID": "0"}


def test_placement_from_the_config_and_from_slurm():
    cfg = TrainConfig(launcher="accelerate", num_processes=16)
    assert placement(cfg, {}).num_machines == 1
    srun = placement(cfg, SLURM)  # the batch script, on the first node: srun starts every node
    assert srun.srun and srun.machine_rank is None and srun.main_ip == "gpu07" and srun.main_port is None
    assert placement(cfg, {k: v for k, v in SLURM.items() if k != "SLURMD_NODENAME"}).main_port == 29500
    step = placement(cfg, {**SLURM, "SLURM_STEP_ID": "0", "SLURM_NODEID": "1"})  # started by srun on node 2
    assert step.srun is None and step.machine_rank == 1 and step.main_port == 29500
    with pytest.raises(HoneError, match="not on the allocation's first node"):
        placement(cfg, {**SLURM, "SLURMD_NODENAME": "gpu08"})
    with pytest.raises(HoneError, match="train.machine_rank"):
        placement(TrainConfig(launcher="accelerate", num_processes=2, num_machines=2, main_process_ip="h"), {})
    with pytest.raises(HoneError, match="train.num_processes"):
        placement(TrainConfig(launcher="accelerate", num_processes=3), SLURM)
    with pytest.raises(ValueError, match="need launcher"):
        TrainConfig(num_machines=2)


def test_inside_slurm_hone_runs_the_srun_command_the_sbatch_example_documents(tmp_path, monkeypatch):
    from hone.config import load_config
    from hone.loop_config import LoopConfig
    from hone.train.launch import run_launched

    record = tmp_path / "srun.args"
    stub = tmp_path / "bin" / "srun"
    stub.parent.mkdir()
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" srun "$@" > {shlex.quote(str(record))}\n')
    stub.chmod(0o755)
    for key, value in {**SLURM, "PATH": f"{stub.parent}{os.pathsep}{os.environ['PATH']}"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SLURM_STEP_ID", raising=False)
    config = load_config(CLUSTER / "loop.yaml", LoopConfig).resolve(CLUSTER).train
    base, data, adapter = tmp_path / "base", tmp_path / "data.jsonl", tmp_path / "round-1" / "adapter"
    with pytest.raises(HoneError, match="without a finished model"):  # the stub trained nothing
        run_launched(config, "sft", data, base, adapter, None)

    sbatch = (CLUSTER / "hone-loop.sbatch").read_text()
    documented = next(line for line in sbatch.splitlines() if line.startswith("#   srun "))[1:]
    for placeholder, value in {"<python>": sys.executable, "<examples>": str(CLUSTER.parent),
                               "<first node>": "gpu07", "<base>": str(base), "<data>": str(data),
                               "<adapter>": str(adapter)}.items():
        documented = documented.replace(placeholder, value)
    assert record.read_text().splitlines() == shlex.split(documented)
    settings = (tmp_path / "round-1" / "adapter.launch.yaml").read_text()
    assert "machine_rank" not in settings and "num_processes: 16" in settings
