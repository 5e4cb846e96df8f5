"""GPU validation in one run, for a machine with an NVIDIA GPU (never a test dependency):

1. bf16 LoRA training tokens/s: Hone (`run_train`) vs a plain TRL script, same ~1B Llama built from a config
   (random init, Hone's local tokenizer), same rows, steps, batch and LoRA.
2. Generation new tokens/s at batch 64 on the same prompts, greedy: vLLM (Hone's `vllm` engine) vs HF `generate`
   (Hone's `hf` engine). vLLM absent: that line says so.
3. Merge wall time and peak RSS for a multi-GB bf16 model: Hone's streaming merge vs PEFT's merge_and_unload
   (benchmarks/merge.py, CPU work, run here for a model of GPU size).

Each measurement runs in its own process (its own GPU memory and peak RSS). Prints a table, writes JSON.

    python benchmarks/gpu.py                     # everything (~10 min on one H100-class GPU)
    python benchmarks/gpu.py --sections train,generate --steps 20
    python benchmarks/gpu.py --dry-run           # CPU: check the arguments, show the plan and the model sizes

Inputs: none to fetch (models are built from configs in the run; vLLM is used where it is installed). The
README quotes no figure from it: it names what the script measures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SECTIONS = ("train", "generate", "merge")
# A Llama-3.2-1B-shaped model (hidden 2048, 16 layers, GQA 32/8 heads); Hone's small local vocabulary keeps
# almost all of its ~1B parameters in the transformer layers.
LLAMA_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                num_key_value_heads=8, max_position_embeddings=4096, rope_theta=500000.0, tie_word_embeddings=True)


def llama_config(tokenizer):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **LLAMA_1B)


def parameters(config) -> int:
    import torch
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        return sum(p.numel() for p in LlamaForCausalLM(config).parameters())


def build(work: Path) -> tuple[Path, Path]:
    """The ~1B model (bf16 safetensors) and the training rows (~300 tokens each), made once."""
    import random

    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    from hone.models.tiny import build_tokenizer

    model, data = work / "llama-1b", work / "rows.jsonl"
    if not (model / "config.json").exists():
        tok = build_tokenizer()
        torch.manual_seed(0)
        m = LlamaForCausalLM(llama_config(tok)).to(torch.bfloat16)
        m.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        m.save_pretrained(model)
        tok.save_pretrained(model)
    if not data.exists():
        rng = random.Random(0)
        with open(data, "w") as f:
            for _ in range(2000):
                terms = [rng.randint(10, 99) for _ in range(40)]
                steps = " ".join(f"{sum(terms[:i + 1])}" for i in range(len(terms)))
                f.write(json.dumps({"prompt": [{"role": "user", "content": "Running sums of " +
                                                " + ".join(map(str, terms)) + "?"}],
                                    "completion": [{"role": "assistant", "content": steps}]}) + "\n")
    return model, data


def train_child(method: str, model: Path, data: Path, out: Path, steps: int, batch: int) -> dict:
    import torch

    lora = dict(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    torch.cuda.reset_peak_memory_stats()
    if method == "hone":
        from hone.train.config import TrainConfig
        from hone.train.sft import run_train

        cfg = TrainConfig(method="lora", lora_r=16, lora_alpha=32, learning_rate=2e-4, max_steps=steps,
                          per_device_batch_size=batch, dtype="bfloat16", logging_steps=10, max_length=1024)
        t = run_train(cfg, data, model, out).report.training
        runtime, tokens = t.runtime_s, t.tokens
    else:  # what a user writes from TRL's quick start: its defaults (bf16, gradient checkpointing on)
        from datasets import load_dataset
        from peft import LoraConfig
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(output_dir=str(out), max_steps=steps, per_device_train_batch_size=batch, learning_rate=2e-4,
                         logging_steps=10, report_to=[], save_strategy="no", seed=0, disable_tqdm=True,
                         max_length=1024)
        trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model, dtype=torch.bfloat16), args=args,
                             train_dataset=load_dataset("json", data_files=str(data), split="train"),
                             processing_class=AutoTokenizer.from_pretrained(model), peft_config=LoraConfig(**lora))
        result = trainer.train()
        runtime = result.metrics["train_runtime"]
        tokens = next(r["num_tokens"] for r in reversed(trainer.state.log_history) if "num_tokens" in r)
    return {"tokens_per_s": tokens / runtime, "runtime_s": runtime, "tokens": tokens,
            "peak_gpu_bytes": torch.cuda.max_memory_allocated()}


def generate_child(method: str, model: Path, prompts: int, max_new_tokens: int) -> dict:
    from hone.generate.base import GenParams, Request
    from hone.generate.registry import Engine, GenerateConfig

    requests = [Request(id=f"p{i}", sample=0, messages=[{"role": "user", "content": f"Running sums of {i} + "
                                                         f"{2 * i + 7} + {3 * i + 11}, step by step?"}])
                for i in range(prompts)]
    params = GenParams(max_new_tokens=max_new_tokens, batch_size=prompts)
    cfg = GenerateConfig(backend=method, dtype="bfloat16", gpu_memory_utilization=0.85)
    with Engine(cfg, model) as engine:
        t0 = time.perf_counter()
        generator = engine()
        list(generator.generate(requests[:1], params.model_copy(update={"max_new_tokens": 4})))  # warm-up
        ready = time.perf_counter() - t0
        t0 = time.perf_counter()
        gens = list(generator.generate(requests, params))
        seconds = time.perf_counter() - t0
    tokens = sum(g.tokens for g in gens)
    return {"tokens_per_s": tokens / seconds, "seconds": seconds, "new_tokens": tokens, "ready_s": ready,
            "outputs": {g.id: g.output for g in gens}}


def run_child(args: argparse.Namespace, *child: str) -> dict | str:
    cmd = [sys.executable, __file__, "--work", str(args.work), "--steps", str(args.steps), "--batch",
           str(args.batch), "--prompts", str(args.prompts), "--max-new-tokens", str(args.max_new_tokens),
           "--child", *child]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return f"failed: {tail[:300]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/hone-bench-gpu"))
    ap.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated: " + ", ".join(SECTIONS))
    ap.add_argument("--steps", type=int, default=30, help="training steps per method")
    ap.add_argument("--batch", type=int, default=8, help="training rows per step")
    ap.add_argument("--prompts", type=int, default=64, help="generation batch (one prompt each)")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--merge-layers", type=int, default=24, help="layers of the merge model (24: ~3 GB bf16)")
    ap.add_argument("--dry-run", action="store_true", help="no GPU needed: check arguments, print the plan")
    ap.add_argument("-o", "--out", type=Path, default=REPO / "benchmarks" / "out" / "gpu.json")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        ap.error(f"unknown section {unknown[0]!r} (choose from {', '.join(SECTIONS)})")
    if args.child:
        kind, method = args.child[:2]
        model, data = args.work / "llama-1b", args.work / "rows.jsonl"
        if kind == "train":
            result = train_child(method, model, data, args.work / f"train-{method}", args.steps, args.batch)
        else:
            result = generate_child(method, model, args.prompts, args.max_new_tokens)
        print(json.dumps(result))
        return

    from hone.models.tiny import build_tokenizer

    size = parameters(llama_config(build_tokenizer()))
    print(f"model: Llama-3.2-1B shape from a config, {size / 1e9:.2f}B parameters, bf16; work folder {args.work}")
    print(f"sections: {', '.join(sections)}; train {args.steps} steps x {args.batch} rows; generate "
          f"{args.prompts} prompts x {args.max_new_tokens} new tokens; merge model {args.merge_layers} layers")
    if args.dry_run:
        print("dry run: nothing measured")
        return
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA GPU here; this script measures GPU speed (try --dry-run)")
    args.work.mkdir(parents=True, exist_ok=True)
    build(args.work)
    result: dict = {"gpu": torch.cuda.get_device_name(0), "parameters": size, "sections": {}}
    if "train" in sections:
        runs = {m: run_child(args, "train", m) for m in ("hone", "trl")}
        ok = all(isinstance(r, dict) for r in runs.values())
        result["sections"]["train"] = {**runs, "ratio_hone_vs_trl": round(
            runs["hone"]["tokens_per_s"] / runs["trl"]["tokens_per_s"], 3) if ok else None}
        for m, r in runs.items():
            print(f"train {m:5s} " + (f"{r['tokens_per_s']:9.0f} tokens/s  peak GPU {r['peak_gpu_bytes'] / 2**30:.1f} "
                                      f"GiB" if isinstance(r, dict) else r))
    if "generate" in sections:
        import importlib.util

        runs = {"hf": run_child(args, "generate", "hf")}
        runs["vllm"] = run_child(args, "generate", "vllm") if importlib.util.find_spec("vllm") else \
            "skipped: vLLM is not installed (pip install 'hone[vllm]')"
        if all(isinstance(r, dict) for r in runs.values()):
            same = sum(runs["vllm"]["outputs"][k] == v for k, v in runs["hf"]["outputs"].items())
            runs["ratio_vllm_vs_hf"] = round(runs["vllm"]["tokens_per_s"] / runs["hf"]["tokens_per_s"], 3)
            runs["same_greedy_answers"] = f"{same}/{len(runs['hf']['outputs'])}"
        for m in ("hf", "vllm"):
            r = runs[m]
            print(f"generate {m:5s} " + (f"{r['tokens_per_s']:9.0f} new tokens/s at batch {args.prompts} "
                                         f"(ready in {r['ready_s']:.0f} s)" if isinstance(r, dict) else r))
            if isinstance(r, dict):
                r.pop("outputs")
        result["sections"]["generate"] = runs
    if "merge" in sections:
        out = args.work / "merge.json"
        done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "merge.py"), "--work",
                               str(args.work / "merge"), "--layers", str(args.merge_layers), "--repeats", "1",
                               "-o", str(out)], capture_output=True, text=True)
        merge = json.loads(out.read_text()) if done.returncode == 0 else f"failed: {done.stderr[-300:]}"
        result["sections"]["merge"] = merge
        if isinstance(merge, dict):
            gb = merge["model"]["bytes"] / 1e9
            for m in ("hone", "peft"):
                print(f"merge {m:5s} {merge['seconds'][m]:7.1f} s  peak RSS {merge['peak_rss_bytes'][m] / 2**30:.2f} GiB"
                      f"  ({gb:.1f} GB model)")
        else:
            print("merge " + merge)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
