"""`hone demo`: the whole loop offline on CPU, on a tiny Llama built on the spot, with a control arm.

1. Build a 0.6M-parameter Llama and a tokenizer locally.
2. Supervised start on synthetic two-step arithmetic, in chunks, until a dev split (neither trained on nor
   held out) shows a middling accuracy: a base that can still improve.
3. Two arms from that same base, same rounds, same training steps: `verified` trains only on samples the
   verifier passed; `control` trains on its own samples unverified. The difference between the arms is what
   verification buys; the held-out split is never trained on (checked before the loop starts).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, ConfigDict

from hone.atomic import write_text_atomic
from hone.records import write_records

Say = Callable[[str], None]


class DemoSize(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pretrain: int
    train: int
    heldout: int
    dev: int
    chunk_steps: int
    max_chunks: int
    base_target: float  # stop the supervised start once the dev split reaches this accuracy
    rounds: int
    samples: int
    lora_steps: int


SIZES = {
    # ../shared/FACTS.md: this regime took a 0.6M Llama from ~50% to ~85% in two rounds on 2 CPU cores.
    "full": DemoSize(pretrain=6000, train=1500, heldout=500, dev=200, chunk_steps=300, max_chunks=12,
                     base_target=0.3, rounds=2, samples=8, lora_steps=300),
    # CI: every stage end to end in about a minute; too small to learn, so it proves plumbing, not uplift.
    "small": DemoSize(pretrain=300, train=40, heldout=30, dev=20, chunk_steps=30, max_chunks=1,
                      base_target=1.0, rounds=2, samples=2, lora_steps=10),
}


def _dev_accuracy(model: Path, dev_tasks: Path, out: Path) -> float:
    from hone.generate.base import GenParams
    from hone.generate.hf import HFGenerator
    from hone.generate.run import run_generate
    from hone.grade.run import run_grade

    gens, _ = run_generate(lambda: HFGenerator.from_dir(str(model), device="cpu"), dev_tasks,
                           out / "dev_generations.jsonl", GenParams(max_new_tokens=16, batch_size=256),
                           {"model": model})
    verdicts, _ = run_grade(dev_tasks, out / "dev_generations.jsonl", out / "dev_verdicts.jsonl")
    return sum(v.verdict == "pass" for v in verdicts) / max(1, len(verdicts))


def make_base(out: Path, size: DemoSize, seed: int, say: Say) -> tuple[Path, dict[str, Any]]:
    """Build the tiny model and give it a supervised start, chunk by chunk, until the dev split is middling."""
    from hone.models.tiny import build_tiny_model
    from hone.train.sft import TrainConfig, run_train

    data = out / "data"
    init = out / "base" / "init"
    if not (init / "config.json").exists():
        build_tiny_model(init, seed=seed)
    cfg = TrainConfig(method="full", learning_rate=1e-3, lr_scheduler_type="constant_with_warmup",
                      warmup_ratio=0.05, max_steps=size.chunk_steps, per_device_batch_size=64, seed=seed,
                      logging_steps=50, max_length=128)
    model, curve = init, []
    for k in range(size.max_chunks):
        chunk = out / "base" / f"chunk-{k + 1}"
        run_train(cfg.model_copy(update={"seed": seed + k}), data / "pretrain_sft.jsonl", model, chunk)
        model = chunk
        acc = _dev_accuracy(model, data / "dev.jsonl", out / "base" / f"dev-{k + 1}")
        curve.append({"steps": (k + 1) * size.chunk_steps, "dev_accuracy": acc})
        say(f"  supervised start: {(k + 1) * size.chunk_steps} steps, dev accuracy {100 * acc:.1f}%")
        if acc >= size.base_target:
            break
    chosen = out / "base" / "model"
    if not (chosen / "config.json").exists():
        import shutil

        shutil.copytree(model, chosen.with_name("model.tmp"), dirs_exist_ok=True)
        os.replace(chosen.with_name("model.tmp"), chosen)
    return chosen, {"model": str(chosen), "from": str(model), "curve": curve}


def _write_data(out: Path, size: DemoSize, seed: int) -> dict[str, Path]:
    from hone.synthetic import arithmetic_splits, supervised_examples

    splits = arithmetic_splits(seed, size.pretrain, size.train, size.heldout + size.dev)
    data = out / "data"
    paths = {"pretrain_sft": data / "pretrain_sft.jsonl", "train": data / "train_tasks.jsonl",
             "heldout": data / "heldout.jsonl", "dev": data / "dev.jsonl"}
    write_records(paths["pretrain_sft"], supervised_examples(splits["pretrain"]))
    write_records(paths["train"], splits["train"])
    write_records(paths["heldout"], splits["heldout"][: size.heldout])
    write_records(paths["dev"], splits["heldout"][size.heldout :])
    return paths


def _arm_config(base: Path, paths: dict[str, Path], size: DemoSize, seed: int, control: str) -> dict[str, Any]:
    return {
        "base_model": str(base.resolve()), "train_tasks": str(paths["train"].resolve()),
        "heldout": {"arithmetic": str(paths["heldout"].resolve())}, "rounds": size.rounds,
        "judge": "verifier", "improve": "resample", "control": control, "seed": seed, "device": "cpu",
        "sample": {"n": size.samples, "temperature": 1.0, "max_new_tokens": 16, "batch_size": 256,
                   "resample_unsolved": 1},
        "data": {"max_per_task": 1},
        "train": {"method": "lora", "lora_r": 16, "lora_alpha": 32, "learning_rate": 2e-3,
                  "max_steps": size.lora_steps, "per_device_batch_size": 64, "seed": seed, "logging_steps": 50,
                  "max_length": 128},
        "bench": {"max_new_tokens": 16, "batch_size": 256},
        "gate": {"tolerance": 0.02},
    }


ARMS = {
    "verified": ("none", "trains only on its own samples that the verifier passed"),
    "control": ("unverified", "same loop, same steps, trains on its own samples without verification"),
}


def run_demo(out: str | Path, seed: int = 0, size_name: str = "full", say: Say = print) -> dict[str, Any]:
    from hone.config import validate_config
    from hone.loop import run_loop
    from hone.loop_config import LoopConfig
    from hone.report.markdown import render_report

    out = Path(out)
    size = SIZES[size_name]
    t0 = time.perf_counter()
    paths = _write_data(out, size, seed)
    say(f"demo ({size_name}, seed {seed}) in {out}: building a tiny Llama and its supervised start")
    base, base_info = make_base(out, size, seed, say)
    arms: dict[str, Any] = {}
    for arm, (control, description) in ARMS.items():
        cfg_path = out / arm / "loop.yaml"
        raw = _arm_config(base, paths, size, seed, control)
        cfg_path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(cfg_path, yaml.safe_dump(raw, sort_keys=False))
        say(f"arm '{arm}': {description}")
        config = validate_config(raw, LoopConfig, cfg_path)
        arms[arm] = run_loop(config, out / arm, say=lambda m: say(f"  [{arm}] {m}"),
                             description=f"Arm `{arm}`: {description}.")
    summary = {"seed": seed, "size": size_name, "base": base_info, "arms": arms,
               "seconds": round(time.perf_counter() - t0, 1)}
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    render_report(arms, out, title=f"Hone demo (seed {seed}): verified self-improvement vs unverified control")
    _print_table(arms, summary["seconds"], say)
    return summary


def _print_table(arms: dict[str, Any], seconds: float, say: Say) -> None:
    say("")
    say("held-out accuracy per round (95% CI); uplift = paired difference vs round 0 on the same items")
    for arm, s in arms.items():
        for r in s["rounds"]:
            acc = r["suites"]["arithmetic"]
            up = (r.get("uplift_vs_round0") or {}).get("arithmetic")
            up_s = (f"  uplift {100 * up['diff']:+5.1f} pts [{100 * up['ci'][0]:+.1f}, {100 * up['ci'][1]:+.1f}]"
                    if up else "")
            flag = "" if r["round"] == 0 else ("  promoted" if r["promoted"] else "  not promoted")
            say(f"  {arm:<9} round {r['round']}: {100 * acc['accuracy']:5.1f}% "
                f"[{100 * acc['ci'][0]:.1f}, {100 * acc['ci'][1]:.1f}]{up_s}{flag}")
    say(f"done in {seconds:.0f} s")
