"""Hone's batched generation vs plain one-at-a-time `model.generate`, on a tiny model on CPU, in one run.

Prints new tokens/s at batch 1, 8, 32 and the ratio to the sequential baseline; writes JSON.
Target (issue 2): at least 5x at batch 32.

    .venv/bin/python benchmarks/generation.py [--tasks 64] [--max-new-tokens 64] [-o benchmarks/out/generation.json]

Inputs: none to fetch (a tiny random Llama built in the run). The README quotes no figure from it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from hone.chat import cut_at_stop, encode, render_prompt, stop_token_ids
from hone.generate.base import GenParams, Request
from hone.generate.hf import HFGenerator
from hone.models.tiny import build_tiny_model


def plain_sequential(model, tok, requests, max_new_tokens):
    """The peer: each prompt alone through `model.generate`, greedy, same stop tokens."""
    tokens = 0
    for r in requests:
        ids = torch.tensor([encode(tok, render_prompt(tok, r.messages))])
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, eos_token_id=stop_token_ids(tok), pad_token_id=tok.pad_token_id)
        kept, stopped = cut_at_stop(tok, out[0, ids.shape[1]:].tolist())
        tokens += len(kept) + stopped
    return tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("-o", "--out", default="benchmarks/out/generation.json")
    args = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "tiny")
        gen = HFGenerator.from_dir(str(model_dir), device="cpu")
        gen.model.generation_config.eos_token_id = None  # random weights: make every answer run full length
        requests = [Request(id=f"t{i}", sample=0, messages=[{"role": "user", "content": f"What is {i} + {2 * i}?"}])
                    for i in range(args.tasks)]
        t0 = time.perf_counter()
        base_tokens = plain_sequential(gen.model, gen.tokenizer, requests, args.max_new_tokens)
        base_tps = base_tokens / (time.perf_counter() - t0)
        result = {"model": "tiny llama 0.6M, fp32, CPU", "tasks": args.tasks, "threads": torch.get_num_threads(),
                  "max_new_tokens": args.max_new_tokens, "plain_sequential_tokens_per_s": round(base_tps, 1),
                  "hone": {}}
        print(f"plain model.generate, one at a time: {base_tps:8.1f} new tokens/s")
        for bs in (1, 8, 32):
            t0 = time.perf_counter()
            gens = list(gen.generate(requests, GenParams(max_new_tokens=args.max_new_tokens, batch_size=bs)))
            tps = sum(g.tokens for g in gens) / (time.perf_counter() - t0)
            result["hone"][f"batch_{bs}"] = {"tokens_per_s": round(tps, 1), "ratio_vs_plain": round(tps / base_tps, 2)}
            print(f"hone batched, batch {bs:>2}:            {tps:8.1f} new tokens/s  ({tps / base_tps:5.2f}x plain)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
