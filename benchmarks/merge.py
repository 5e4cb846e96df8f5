"""Streaming merge against PEFT's `merge_and_unload` + `save_pretrained`, with `cp` as the physical floor.

A random-init Llama of ~1.1 GB (bf16, several safetensors shards) and one random LoRA (r=16, every linear
layer). Each method runs in its own fresh process, so its peak RSS is its own; the files are read once
beforehand, so every method starts from the same warm page cache. Targets (issue 3): Hone's peak RSS <= 0.5x
PEFT's, wall time <= 1.0x PEFT's and within 3x of the copy. Hone fsyncs every shard (a merge that can vanish
in a power cut must not look finished), so `cp` followed by `sync` of the copied files is reported as well: the
durable floor. Hone's verification (two model loads and probe prompts) is timed on its own line: it is a
different job from the merge.

    .venv/bin/python benchmarks/merge.py [--layers 8] [--repeats 2] [-o benchmarks/out/merge.json]

Inputs: none to fetch (the model and the LoRA are random, built in the run; ~1.1 GB of disk under --work,
/tmp/hone-bench-merge by default).
The README quotes no figure from it.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def build(work: Path, layers: int) -> tuple[Path, Path]:
    """The base model and the adapter, made once and kept in `work`."""
    import torch
    from peft import LoraConfig
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    from hone.models.tiny import build_tokenizer

    base, adapter = work / "base", work / "adapter"
    if not (base / "config.json").exists():
        cfg = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=layers,
                          num_attention_heads=16, num_key_value_heads=16, tie_word_embeddings=False)
        torch.manual_seed(0)
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
        model.save_pretrained(base, max_shard_size="250MB")
        build_tokenizer().save_pretrained(base)
        del model
    if not (adapter / "adapter_config.json").exists():
        from hone.merge.shards import weight_index

        _, tensors = weight_index(base)
        gen = torch.Generator().manual_seed(1)
        r, lora = 16, {}
        for name, entry in tensors.items():
            if len(entry.shape) == 2 and name.endswith("proj.weight"):
                module = "base_model.model." + name[: -len(".weight")]
                out_f, in_f = entry.shape
                lora[f"{module}.lora_A.weight"] = torch.randn(r, in_f, generator=gen) / in_f**0.5
                lora[f"{module}.lora_B.weight"] = torch.randn(out_f, r, generator=gen) * 0.01
        adapter.mkdir(parents=True, exist_ok=True)
        save_file(lora, adapter / "adapter_model.safetensors", metadata={"format": "pt"})
        LoraConfig(r=r, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM").save_pretrained(adapter)
    return base, adapter


def size_of(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def child(method: str, base: Path, adapter: Path, out: Path) -> dict:
    """Runs inside the measured process: one method, its wall time and the process's peak RSS. Each method
    imports what it needs before timing; the RSS after imports is reported, so the work's own memory shows."""
    import psutil
    import torch

    if method == "peft":
        from peft import PeftModel
        from transformers import AutoModelForCausalLM
    else:
        from hone.errors import HoneError
        from hone.merge.run import MergeConfig, run_merge
        from hone.merge.verify import verify_merge
    rss_after_imports = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    if method == "hone":
        run_merge(MergeConfig(verify=False), base, adapter, out)
    elif method == "hone-verify":
        try:
            verify_merge(base, adapter, out)
        except HoneError:
            pass  # the result is in merge_report.json; on a random-init model top-1 ties are noise
    elif method == "peft":
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
        merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        merged.save_pretrained(out, max_shard_size="250MB")
    else:
        raise SystemExit(f"unknown method {method}")
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "rss_after_imports": rss_after_imports}


def measure(method: str, base: Path, adapter: Path, out: Path) -> dict:
    subprocess.run(["sync"], check=True)  # no earlier run's dirty pages left to flush during this one
    if method in ("cp", "cp+sync"):
        if out.exists():
            shutil.rmtree(out)
        t0 = time.perf_counter()
        subprocess.run(["cp", "-r", str(base), str(out)], check=True)
        if method == "cp+sync":  # the durable copy: Hone fsyncs every shard before the merge can count as done
            subprocess.run(["sync", *map(str, sorted(out.iterdir()))], check=True)
        return {"seconds": time.perf_counter() - t0}
    if method != "hone-verify" and out.exists():
        shutil.rmtree(out)
    done = subprocess.run([sys.executable, __file__, "--child", method, str(base), str(adapter), str(out)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{method} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def warm(folder: Path) -> None:
    for f in folder.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                while fh.read(64 << 20):
                    pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/hone-bench-merge"))
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("-o", "--out", type=Path, default=REPO / "benchmarks" / "out" / "merge.json")
    ap.add_argument("--child", nargs=4, metavar=("METHOD", "BASE", "ADAPTER", "OUT"))
    args = ap.parse_args()
    if args.child:
        method, base, adapter, out = args.child
        print(json.dumps(child(method, Path(base), Path(adapter), Path(out))))
        return

    base, adapter = build(args.work, args.layers)
    warm(base)
    runs: dict[str, list[dict]] = {"cp": [], "cp+sync": [], "hone": [], "peft": []}
    for _ in range(args.repeats):  # interleaved, so a change in machine load hits every method alike
        for method in runs:
            runs[method].append(measure(method, base, adapter, args.work / f"out-{method}"))
    verify = measure("hone-verify", base, adapter, args.work / "out-hone")
    verify["result"] = json.loads((args.work / "out-hone" / "merge_report.json").read_text())["verification"]
    best = {m: min(r, key=lambda x: x["seconds"]) for m, r in runs.items()}
    peak = {m: max(x["peak_rss"] for x in r) for m, r in runs.items() if not m.startswith("cp")}
    work_rss = {m: max(x["peak_rss"] - x["rss_after_imports"] for x in runs[m]) for m in peak}
    result = {
        "model": {"bytes": size_of(base), "shards": len(list(base.glob("*.safetensors"))), "layers": args.layers,
                  "dtype": "bfloat16"},
        "adapter_bytes": size_of(adapter),
        "runs": runs,
        "verify": verify,
        "seconds": {m: round(b["seconds"], 3) for m, b in best.items()},
        "peak_rss_bytes": peak,
        "peak_rss_above_imports_bytes": work_rss,
        "ratios": {
            "hone_vs_peft_peak_rss": round(peak["hone"] / peak["peft"], 3),
            "hone_vs_peft_peak_rss_above_imports": round(work_rss["hone"] / work_rss["peft"], 3),
            "hone_vs_peft_wall": round(best["hone"]["seconds"] / best["peft"]["seconds"], 3),
            "hone_vs_cp_wall": round(best["hone"]["seconds"] / best["cp"]["seconds"], 3),
            "hone_vs_cp_sync_wall": round(best["hone"]["seconds"] / best["cp+sync"]["seconds"], 3),
        },
        "targets": {"hone_vs_peft_peak_rss": 0.5, "hone_vs_peft_wall": 1.0, "hone_vs_cp_wall": 3.0},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    gb = 1 << 30
    print(f"model {result['model']['bytes'] / gb:.2f} GB in {result['model']['shards']} shards")
    for m in ("cp", "cp+sync", "hone", "peft"):
        rss = f", peak RSS {peak[m] / gb:.2f} GB ({work_rss[m] / gb:.2f} GB above imports)" if m in peak else ""
        print(f"{m:7s} {result['seconds'][m]:7.2f} s{rss}")
    print(f"hone verify {verify['seconds']:.2f} s, peak RSS {verify['peak_rss'] / gb:.2f} GB")
    print(json.dumps(result["ratios"]))


if __name__ == "__main__":
    main()
