"""Training throughput: Hone's `run_train` against plain TRL `SFTTrainer` on the same tiny model and data.

The demo's setting: a 0.57M-parameter Llama (hone.models.tiny), full fine-tuning at batch 64 on arithmetic chat
rows, CPU. Peers: TRL with its defaults (bf16 autocast and gradient checkpointing on, even on CPU) and TRL with
those two turned off, both fed the conversational prompt/completion rows and tokenizing them itself. Each run is
its own process, one after another, same steps and seed (TRL's defaults also need `use_cpu=True` on CPU,
or they refuse to start); tokens/s is TRL's `num_tokens` over `train_runtime`
(the training loop only, model loading excluded), and wall time includes everything.

    .venv/bin/python benchmarks/train.py [--steps 150] [--threads 2] [-o benchmarks/out/train.json]

Inputs: none to fetch (the tiny Llama and the arithmetic rows are built in the run). The README quotes no
figure from it.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_inputs(work: Path) -> tuple[Path, Path]:
    from hone.models.tiny import build_tiny_model

    base, data = work / "base", work / "add.jsonl"
    if not (base / "config.json").exists():
        build_tiny_model(base, seed=0)
    rng = random.Random(0)
    with open(data, "w") as f:
        for _ in range(4000):
            a, b = rng.randint(10, 99), rng.randint(10, 99)
            f.write(json.dumps({"prompt": [{"role": "user", "content": f"What is {a} + {b}?"}],
                                "completion": [{"role": "assistant", "content": str(a + b)}]}) + "\n")
    return base, data


def child(method: str, base: Path, data: Path, out: Path, steps: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    if method == "hone":
        from hone.train.config import TrainConfig
        from hone.train.sft import run_train

        cfg = TrainConfig(method="full", learning_rate=1e-3, per_device_batch_size=64, max_steps=steps,
                          logging_steps=50)
        log = run_train(cfg, data, base, out).report.training
        runtime, tokens = log.runtime_s, log.tokens
    else:
        from datasets import load_dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import SFTConfig, SFTTrainer

        # On CPU, TRL's defaults (bf16=True) refuse to start without use_cpu; with it, they autocast to bf16.
        extra = {"use_cpu": True} if method == "trl-defaults" else {"bf16": False, "gradient_checkpointing": False}
        args = SFTConfig(output_dir=str(out), max_steps=steps, per_device_train_batch_size=64, learning_rate=1e-3,
                         logging_steps=50, report_to=[], save_strategy="no", seed=0, disable_tqdm=True, **extra)
        trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(base), args=args,
                             train_dataset=load_dataset("json", data_files=str(data), split="train"),
                             processing_class=AutoTokenizer.from_pretrained(base))
        result = trainer.train()
        runtime = result.metrics["train_runtime"]
        tokens = next(r["num_tokens"] for r in reversed(trainer.state.log_history) if "num_tokens" in r)
        trainer.save_model(str(out))
    return {"tokens_per_s": tokens / runtime, "train_runtime_s": runtime, "tokens": tokens,
            "wall_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/hone-bench-train"))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("-o", "--out", type=Path, default=REPO / "benchmarks" / "out" / "train.json")
    ap.add_argument("--child", nargs=4, metavar=("METHOD", "BASE", "DATA", "OUT"))
    args = ap.parse_args()
    if args.child:
        method, base, data, out = args.child
        print(json.dumps(child(method, Path(base), Path(data), Path(out), args.steps, args.threads)))
        return

    args.work.mkdir(parents=True, exist_ok=True)
    base, data = make_inputs(args.work)
    runs: dict[str, list[dict]] = {"hone": [], "trl-tuned": [], "trl-defaults": []}
    for _ in range(args.repeats):  # interleaved, so a change in machine load hits every method alike
        for method in runs:
            out = args.work / f"out-{method}"
            shutil.rmtree(out, ignore_errors=True)
            done = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--threads",
                                   str(args.threads), "--child", method, str(base), str(data), str(out)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{method} failed:\n{done.stderr[-3000:]}")
            runs[method].append(json.loads(done.stdout.strip().splitlines()[-1]))
    best = {m: max(r, key=lambda x: x["tokens_per_s"]) for m, r in runs.items()}
    result = {"steps": args.steps, "batch": 64, "threads": args.threads, "runs": runs,
              "tokens_per_s": {m: round(b["tokens_per_s"]) for m, b in best.items()},
              "ratios": {f"hone_vs_{m}": round(best["hone"]["tokens_per_s"] / best[m]["tokens_per_s"], 3)
                         for m in ("trl-tuned", "trl-defaults")}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for m, b in best.items():
        print(f"{m:13s} {b['tokens_per_s']:8.0f} tokens/s  (loop {b['train_runtime_s']:.1f} s, wall {b['wall_s']:.1f} s)")
    print(json.dumps(result["ratios"]))


if __name__ == "__main__":
    main()
