"""One loop round with training inline (one process) vs launched (`accelerate launch`, 2 DDP/gloo processes), on
the demo's small model on CPU, same global batch and steps, in one run.

Prints the round's wall time, the training loop's own time (lineage runtime_s) and the ratio launched / inline;
writes JSON. On CPU with 2 cores the launched run pays process start-up and gloo all-reduce and gains no
hardware: this measures that overhead, not a speed-up (which needs one GPU per process).

    .venv/bin/python benchmarks/launch.py [--steps 60] [-o benchmarks/out/launch.json]

Inputs: none to fetch (the demo's small model and data are built in the run). The README's figures (3.5x the
round's wall time launched, 1.13x its training loop) were printed by the command above with its defaults.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/hone-bench-launch"))
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=16, help="global batch (launched: half per process)")
    ap.add_argument("-o", "--out", type=Path, default=REPO / "benchmarks" / "out" / "launch.json")
    args = ap.parse_args()
    demo = args.work / "demo"
    if not (demo / "control" / "loop.yaml").exists():
        from hone.demo import run_demo

        run_demo(demo, seed=0, size_name="small", say=lambda m: None)
    raw = yaml.safe_load((demo / "control" / "loop.yaml").read_text())
    raw["rounds"] = 1
    settings = {"inline": {"per_device_batch_size": args.batch},
                "accelerate x2": {"per_device_batch_size": args.batch // 2, "launcher": "accelerate",
                                  "num_processes": 2}}
    result: dict = {"steps": args.steps, "global_batch": args.batch, "runs": {}}
    for name, train in settings.items():
        cfg = {**raw, "train": {**raw["train"], "max_steps": args.steps, **train}}
        path = args.work / f"{name.split()[0]}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        run = args.work / f"run-{name.split()[0]}"
        shutil.rmtree(run, ignore_errors=True)
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "hone.cli", "loop", "--config", str(path), "-o", str(run)],
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
        summary = json.loads((run / "summary.json").read_text())
        training = json.loads((run / "round-1" / "adapter" / "lineage.json").read_text())["training"]
        result["runs"][name] = {"loop_wall_s": round(wall, 1), "round1_s": summary["rounds"][1]["seconds"],
                                "train_runtime_s": training["runtime_s"], "processes": training["processes"],
                                "tokens": training["tokens"]}
        print(f"{name:14s} loop {wall:6.1f} s  round 1 {summary['rounds'][1]['seconds']:6.1f} s  training loop "
              f"{training['runtime_s']:6.1f} s ({training['processes']} process(es), {training['tokens']:.0f} tokens)")
    a, b = result["runs"]["inline"], result["runs"]["accelerate x2"]
    result["ratio_round1_launched_vs_inline"] = round(b["round1_s"] / a["round1_s"], 3)
    result["ratio_training_launched_vs_inline"] = round(b["train_runtime_s"] / a["train_runtime_s"], 3)
    print(f"launched / inline: round 1 {result['ratio_round1_launched_vs_inline']:.2f}x, training loop "
          f"{result['ratio_training_launched_vs_inline']:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
