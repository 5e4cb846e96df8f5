"""Where the training machines are: from the config, or inside a Slurm allocation from Slurm's environment.

Hone never manages a cluster. A multi-machine run is torch's c10d rendezvous at `main_process_ip:port` (the node
ranks are settled there, so every node may run the same command), reached either by one `hone train` per
machine with its `machine_rank`, or, when Hone runs in a Slurm batch script (on the allocation's first node),
by one `srun` step that starts the launcher once on every node.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Mapping

from hone.errors import HoneError

DEFAULT_PORT = 29500  # accelerate's and torchrun's default rendezvous port


@dataclass(frozen=True)
class Placement:
    """How this launch joins the run. `machine_rank` None: every node runs the same command (srun), and the
    c10d rendezvous numbers them. `srun`: the prefix that starts the launcher on every node, or None."""

    num_machines: int
    machine_rank: int | None = 0
    main_ip: str = "127.0.0.1"
    main_port: int | None = None  # None: a free port here (one machine, or srun from the rendezvous host)
    srun: tuple[str, ...] | None = None

    @property
    def multi(self) -> bool:
        return self.num_machines > 1


def expand_nodelist(nodelist: str) -> list[str]:
    """Slurm's compact host list (`gpu[01-02,07],login`) as host names, in order. Uses `scontrol show hostnames`
    where Slurm is installed, else reads the common forms itself (one bracket group per name)."""
    if shutil.which("scontrol"):
        try:
            done = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                                  timeout=30, check=True)
            hosts = done.stdout.split()
            if hosts:
                return hosts
        except (OSError, subprocess.SubprocessError):
            pass
    hosts: list[str] = []
    for name in re.findall(r"[^,\[]+(?:\[[^\]]*\])?[^,]*", nodelist):
        group = re.fullmatch(r"([^\[]*)\[([^\]]*)\](.*)", name)
        if not group:
            hosts.append(name)
            continue
        prefix, ranges, suffix = group.groups()
        for part in ranges.split(","):
            low, _, high = part.partition("-")
            if not low.isdigit() or (high and not high.isdigit()) or "[" in suffix:
                raise HoneError(f"SLURM_JOB_NODELIST: cannot read {nodelist!r} (install Slurm's scontrol here)")
            for n in range(int(low), int(high or low) + 1):
                hosts.append(f"{prefix}{n:0{len(low)}d}{suffix}")
    return hosts


def _int(env: Mapping[str, str], key: str) -> int:
    try:
        return int(env[key])
    except (KeyError, ValueError):
        raise HoneError(f"{key}: expected a number in the Slurm environment, got {env.get(key)!r}") from None


def placement(config: Any, env: Mapping[str, str]) -> Placement:
    """This launch's place in the run, from `train.num_machines`, `machine_rank`, `main_process_ip`/`port`, and
    inside a Slurm allocation (SLURM_JOB_ID) from SLURM_NNODES, SLURM_JOB_NODELIST and SLURM_NODEID."""
    slurm = "SLURM_JOB_ID" in env and "SLURM_JOB_NODELIST" in env
    machines = config.num_machines or (_int(env, "SLURM_NNODES") if slurm else 1)
    if machines == 1:
        return Placement(1, main_port=config.main_process_port)
    if config.num_processes % machines:
        raise HoneError(f"train.num_processes: {config.num_processes} processes do not split evenly over "
                        f"{machines} machines (give the total, one per GPU of every machine)")
    hosts = expand_nodelist(env["SLURM_JOB_NODELIST"]) if slurm else []
    if slurm and len(hosts) < machines:
        raise HoneError(f"train.num_machines: {machines} machines, but the Slurm allocation has {len(hosts)} "
                        f"({env['SLURM_JOB_NODELIST']})")
    main_ip = config.main_process_ip or (hosts[0] if hosts else None)
    if main_ip is None:
        raise HoneError(f"train.main_process_ip: needed for num_machines {machines} outside a Slurm allocation "
                        "(the address of the machine of rank 0, reachable from every machine)")
    in_step = "SLURM_STEP_ID" in env  # srun started this process on its node; a batch script has no step id
    if slurm and not in_step and config.machine_rank is None:
        here = env.get("SLURMD_NODENAME")
        if not config.main_process_ip and here and here != hosts[0]:
            raise HoneError(f"SLURMD_NODENAME: Hone runs on {here}, not on the allocation's first node {hosts[0]} "
                            "(run it from the batch script, or set train.main_process_ip)")
        srun = ("srun", f"--nodes={machines}", f"--ntasks={machines}", "--ntasks-per-node=1",
                "--kill-on-bad-exit=1")
        # A free port found here is free on the rendezvous host only if this is that host.
        port = config.main_process_port or (None if here == main_ip else DEFAULT_PORT)
        return Placement(machines, None, main_ip, port, srun)
    rank = config.machine_rank if config.machine_rank is not None else (
        _int(env, "SLURM_NODEID") if in_step else None)
    if rank is None:
        raise HoneError(f"train.machine_rank: needed for num_machines {machines} outside a Slurm allocation "
                        f"(0 on the machine at main_process_ip, 1 to {machines - 1} on the others)")
    if rank >= machines:
        raise HoneError(f"train.machine_rank: {rank} is not below num_machines {machines}")
    return Placement(machines, rank, main_ip, config.main_process_port or DEFAULT_PORT)
