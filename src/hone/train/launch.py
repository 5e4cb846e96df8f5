"""`train.launcher: accelerate | torchrun`: a training stage run by a launcher in worker processes.

The caller (the loop, or `hone train`) writes the settings to a YAML file, runs
`accelerate launch --num_processes N [--config_file F] -m hone.cli train ...` (or `torchrun`) in its own process
group, streams the main rank's progress into its own progress bar and every line into a log, and stops the whole
group if it is interrupted. Over several machines (hone.train.cluster) the launchers meet at a c10d rendezvous;
in a Slurm batch script the command is prefixed with `srun`, which starts it once on every node. The workers
train exactly as `hone train` does (hone.train.trainer): a killed run resumes from its last complete checkpoint
(in the run folder, on the filesystem every machine shares) when launched again, and the result only looks
finished once lineage.json is written.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from hone import procgroup
from hone.atomic import write_text_atomic
from hone.errors import HoneError
from hone.train.callbacks import ProgressFactory
from hone.train.cluster import Placement, placement
from hone.models.lineage import LINEAGE_FILE

LAUNCHED_ENV = "HONE_LAUNCHED"  # set for the workers: train here, and report progress as lines
PROGRESS_PREFIX = "hone-progress "


def inside_launch() -> bool:
    return os.environ.get(LAUNCHED_ENV) == "1"


def main_process() -> bool:
    """False in the other workers of `accelerate launch`: only the main process reports."""
    return int(os.environ.get("RANK", "0")) == 0


def line_progress() -> ProgressFactory:
    """The workers' progress factory: `hone-progress DONE TOTAL` lines on stdout, read by the launching process."""
    def factory(todo: int, done: int):
        state = {"done": done, "total": todo + done}
        print(f"{PROGRESS_PREFIX}{done} {todo + done}", flush=True)

        def advance(n: int = 1) -> None:
            state["done"] += n
            print(f"{PROGRESS_PREFIX}{state['done']} {state['total']}", flush=True)

        return advance

    factory.close = lambda: None  # type: ignore[attr-defined]
    return factory


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accelerate_args(config: Any, place: Placement, port: int) -> list[str]:
    cmd = ["-m", "accelerate.commands.launch", "--num_processes", str(config.num_processes),
           "--num_machines", str(place.num_machines), "--main_process_port", str(port)]
    if config.accelerate_config:
        if not Path(config.accelerate_config).is_file():
            raise HoneError(f"train.accelerate_config: no such file {config.accelerate_config}")
        cmd += ["--config_file", str(config.accelerate_config)]
    else:
        # DDP over every process (NCCL on GPUs, gloo on CPU); the Trainer sets bf16 itself from the settings.
        cmd += ["--mixed_precision", "no", "--dynamo_backend", "no"]
        if config.num_processes > 1:
            cmd.append("--multi_gpu")
    if place.multi:
        # c10d numbers the nodes as they join: under srun every node runs this same command (machine rank 0).
        cmd += ["--machine_rank", str(place.machine_rank or 0), "--main_process_ip", place.main_ip,
                "--rdzv_backend", "c10d"]
        if place.machine_rank is not None:
            cmd += ["--rdzv_conf", f"is_host={int(place.machine_rank == 0)}"]
    return cmd


def _torchrun_args(config: Any, place: Placement, port: int) -> list[str]:
    cmd = ["-m", "torch.distributed.run", "--nnodes", str(place.num_machines),
           "--nproc-per-node", str(config.num_processes // place.num_machines)]
    if not place.multi:
        return cmd + ["--master-port", str(port)]
    cmd += ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"{place.main_ip}:{port}"]
    if place.machine_rank is not None:
        cmd += ["--rdzv-conf", f"is_host={int(place.machine_rank == 0)}"]
    return cmd


def launch_command(config: Any, objective: str, data: Path, base: Path, out: Path, settings: Path,
                   place: Placement) -> list[str]:
    """argv of `[srun ...] accelerate launch ... -m hone.cli train ...` (or torchrun) for these settings."""
    port = place.main_port or _free_port()
    launcher = _torchrun_args if config.launcher == "torchrun" else _accelerate_args
    return [*(place.srun or ()), sys.executable, *launcher(config, place, port),
            "-m", "hone.cli", "train", "--objective", objective, "--base", str(base), "--data", str(data),
            "-o", str(out), "--config", str(settings)]


# Where this machine sits is not a training setting: every machine hands its workers the same settings file.
_PLACEMENT = {"restart", "overwrite", "machine_rank", "main_process_ip", "main_process_port"}


def _settings_file(config: Any, out: Path) -> Path:
    path = out.with_name(out.name + ".launch.yaml")
    write_text_atomic(path, yaml.safe_dump(json.loads(config.model_dump_json(exclude=_PLACEMENT)), sort_keys=False))
    return path


def run_launched(config: Any, objective: str, data: str | os.PathLike, base: str | os.PathLike,
                 out: str | os.PathLike, progress: ProgressFactory | None,
                 log_path: str | os.PathLike | None = None) -> Path:
    """Train under the launcher; return `out` once its lineage is written. Output goes to `log_path` (default:
    `<out>.train.log`, `<out>.train.machineN.log` for a machine of rank N > 0 started by hand)."""
    out, data, base = Path(out), Path(data), Path(base)
    out.parent.mkdir(parents=True, exist_ok=True)
    place = placement(config, os.environ)
    rank = f".machine{place.machine_rank}" if place.machine_rank else ""  # machines may share the run folder
    log = Path(log_path) if log_path else out.with_name(f"{out.name}.train{rank}.log")
    cmd = launch_command(config, objective, data.resolve(), base.resolve(), out.resolve(),
                         _settings_file(config, out).resolve(), place)
    env = {**os.environ, LAUNCHED_ENV: "1", "PYTHONUNBUFFERED": "1"}
    advance = None
    shown = 0
    error_line = ""
    with open(log, "a", encoding="utf-8") as sink, procgroup.sigterm_unwinds():
        sink.write(f"=== {' '.join(cmd)}\n")
        sink.flush()
        proc = procgroup.start(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=env, text=True, bufsize=1)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                sink.write(line)
                sink.flush()
                if line.startswith(PROGRESS_PREFIX):
                    done, total = (int(x) for x in line[len(PROGRESS_PREFIX):].split())
                    if advance is None and progress is not None:
                        advance, shown = progress(total - done, done), done
                    elif advance is not None and done > shown:
                        advance(done - shown)
                        shown = done
                elif line.startswith("error: "):
                    error_line = line.strip()
            code = proc.wait()
        except BaseException:
            procgroup.stop(proc)
            raise
    if code != 0:
        raise HoneError(f"training under {config.launcher} failed (exit {code})"
                        f"{': ' + error_line[len('error: '):] if error_line else ''}; log: {log}")
    if not (out / LINEAGE_FILE).exists():
        raise HoneError(f"{out}: {config.launcher} ended without a finished model (no {LINEAGE_FILE}); log: {log}")
    return out
