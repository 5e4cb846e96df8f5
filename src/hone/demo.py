"""`hone demo`: the whole loop offline on CPU, on a tiny Llama built on the spot, with a control arm.

1. Build a 0.6M-parameter Llama and a tokenizer locally.
2. Supervised start on synthetic two-step arithmetic, in chunks, until a dev split (neither trained on nor
   held out) shows a middling accuracy: a base that can still improve.
3. Two arms from that same base, same rounds, same training steps: `verified` trains only on samples the
   verifier passed; `control` trains on its own samples unverified. The difference between the arms is what
   verification buys; the held-out split is never trained on (checked before the loop starts).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import yaml
from pydantic import BaseModel, ConfigDict

from hone.atomic import write_text_atomic
from hone.progress import Say

if TYPE_CHECKING:
    from hone.round import DemoSummary, LoopSummary
from hone.records import write_records

class DemoSize(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pretrain: int
    train: int  # training prompts per round (fresh each round)
    heldout: int
    dev: int
    base_steps: int  # the supervised start: one cosine-scheduled run of this many steps (batch 32)
    extra_steps: int  # added, a chunk at a time, while the dev split is below `base_target`
    max_extra: int
    base_target: float
    rounds: int
    samples: int
    lora_steps: int


SIZES = {
    # Chosen by measurement on 2 cores (seed 2's base, one round, 500 held-out items): gains grow with LoRA
    # steps (150/300/450/600 steps: +5/+13/+21/+26 points) and with distinct prompts that have a verified
    # answer (1,000 vs 2,000 rows at 300 steps: +7 vs +13); 4 samples at temperature 0.7 plus one re-sample of
    # the unsolved gave +16 vs +11 at 1.0 and +10 at 0.5; 2 or 1 samples over 6,000 prompts gave +10 / +9.
    # On 2,000 held-out items (two training seeds each): 400 steps at batch 64, lr 2e-3 gave 31.6 / 30.7%;
    # 1,000 steps at batch 32, lr 1e-3 gave 35.3 / 34.7% for 14% more time (less padding per batch). The demo
    # takes 800 of those: with 1,000, a seed whose start needs an extra chunk (seed 1) took 9 min 48 s.
    # 2,000 held-out items, not 500: one model gained +7.4 on one 500-item draw and +15.8 on another.
    "full": DemoSize(pretrain=6000, train=3000, heldout=2000, dev=200, base_steps=1000, extra_steps=300,
                     max_extra=4, base_target=0.15, rounds=2, samples=4, lora_steps=800),
    # CI: every stage end to end in about a minute; too small to learn, so it proves plumbing, not uplift.
    "small": DemoSize(pretrain=300, train=40, heldout=30, dev=20, base_steps=30, extra_steps=10, max_extra=0,
                      base_target=1.0, rounds=2, samples=2, lora_steps=10),
}


def _dev_accuracy(model: Path, dev_tasks: Path, out: Path) -> float:
    from hone.generate.base import GenParams
    from hone.generate.hf import HFGenerator
    from hone.generate.run import GenerateStageConfig, run_generate
    from hone.grade.run import GradeConfig, run_grade

    run_generate(GenerateStageConfig(params=GenParams(max_new_tokens=12, batch_size=256), model_ref={"model": model}),
                 lambda: HFGenerator.from_dir(str(model), device="cpu"), dev_tasks, out / "dev_generations.jsonl")
    graded = run_grade(GradeConfig(), dev_tasks, out / "dev_generations.jsonl", out / "dev_verdicts.jsonl")
    return graded.counts["pass"] / max(1, len(graded.verdicts))


def make_base(out: Path, size: DemoSize, seed: int, say: Say) -> tuple[Path, dict[str, Any]]:
    """Build the tiny model and give it a supervised start, chunk by chunk, until the dev split is middling."""
    from hone.models.tiny import build_tiny_model
    from hone.progress import stage_bar
    from hone.train.config import TrainConfig
    from hone.train.sft import run_train

    data = out / "data"
    init = out / "base" / "init"
    if not (init / "config.json").exists():
        build_tiny_model(init, seed=seed)
    cfg = TrainConfig(method="full", learning_rate=1e-3, lr_scheduler_type="cosine", warmup_ratio=0.03,
                      max_steps=size.base_steps, per_device_batch_size=32, seed=seed, logging_steps=50, max_length=128)
    model, curve, steps = init, [], 0
    for k in range(1 + size.max_extra):
        chunk = out / "base" / f"chunk-{k + 1}"
        if k:
            cfg = cfg.model_copy(update={"max_steps": size.extra_steps, "learning_rate": 5e-4, "seed": seed + k})
        with stage_bar(f"supervised start · chunk {k + 1}") as bar:
            run_train(cfg, data / "pretrain_sft.jsonl", model, chunk, progress=bar)
        model, steps = chunk, steps + cfg.max_steps
        acc = _dev_accuracy(model, data / "dev.jsonl", out / "base" / f"dev-{k + 1}")
        curve.append({"steps": steps, "dev_accuracy": acc})
        say(f"  supervised start: {steps} steps, dev accuracy {100 * acc:.1f}%")
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

    # Fresh prompts each round: a pool of `train` prompts per round (hone.sample.run.round_prompts).
    splits = arithmetic_splits(seed, size.pretrain, size.train * size.rounds, size.heldout + size.dev)
    data = out / "data"
    paths = {"pretrain_sft": data / "pretrain_sft.jsonl", "train": data / "train_tasks.jsonl",
             "heldout": data / "heldout.jsonl", "dev": data / "dev.jsonl"}
    write_records(paths["pretrain_sft"], supervised_examples(splits["pretrain"]))
    write_records(paths["train"], splits["train"])
    write_records(paths["heldout"], splits["heldout"][: size.heldout])
    write_records(paths["dev"], splits["heldout"][size.heldout :])
    return paths


def arm_config(base: Path, train: Path, heldout: dict[str, Path], rounds: int, seed: int, control: str, *,
               max_new_tokens: int, batch_size: int, sample: dict[str, Any], lora: dict[str, Any]) -> dict[str, Any]:
    """One demo arm's loop config: verifier-judged resampling from `base`, trained on verified answers (control
    "none") or on its own unverified ones ("unverified"). A demo gives its model's lengths, batch, sampling (n,
    passes, prompts per round) and LoRA steps; the rest is the same for every demo."""
    return {
        "base_model": str(base.resolve()), "train_tasks": str(train.resolve()),
        "heldout": {name: str(path.resolve()) for name, path in heldout.items()}, "rounds": rounds,
        "judge": "verifier", "improve": "resample", "control": control, "seed": seed, "device": "cpu",
        "sample": {"temperature": 0.7, "max_new_tokens": max_new_tokens, "batch_size": batch_size, **sample},
        "data": {"max_per_task": 1},
        "train": {"method": "lora", "lora_r": 16, "lora_alpha": 32, "seed": seed, "max_length": 128, **lora},
        "bench": {"max_new_tokens": max_new_tokens, "batch_size": batch_size},
        # A 1-point drop refuses a round: on 2,000 paired items a difference is known to about +-1.5 points.
        "gate": {"tolerance": 0.01},
    }


def _arm_config(base: Path, paths: dict[str, Path], size: DemoSize, seed: int, control: str) -> dict[str, Any]:
    return arm_config(base, paths["train"], {"arithmetic": paths["heldout"]}, size.rounds, seed, control,
                      max_new_tokens=12, batch_size=256,
                      sample={"n": size.samples, "resample_unsolved": 1, "prompts_per_round": size.train},
                      lora={"learning_rate": 1e-3, "max_steps": size.lora_steps, "per_device_batch_size": 32,
                            "logging_steps": 50})


ARMS = {
    "verified": ("none", "trains only on its own samples that the verifier passed"),
    "control": ("unverified", "same loop, same steps, trains on its own samples without verification"),
}


def run_demo(out: str | Path, seed: int = 0, size_name: str = "full", say: Say = print,
             threads: int = 1) -> DemoSummary:
    """Run the demo into `out` (resumable). One torch thread by default: a 0.6M model gains nothing from
    more, and on a busy 2-core machine two OpenMP threads stall each other (measured 10x slower)."""
    import torch

    out = Path(out)
    size = SIZES[size_name]
    t0 = time.perf_counter()
    paths = _write_data(out, size, seed)
    say(f"demo ({size_name}, seed {seed}) in {out}: building a tiny Llama and its supervised start")
    # Nothing else runs while the base is made: it gets the cores the arms will share later.
    torch.set_num_threads(min(len(ARMS) * threads, os.cpu_count() or 1))
    base, base_info = make_base(out, size, seed, say)
    torch.set_num_threads(threads)
    configs = write_arm_configs(out, lambda control: _arm_config(base, paths, size, seed, control), say)
    run_arms_in_parallel(configs, out, threads, say)
    title = f"Hone demo (seed {seed}): verified self-improvement vs unverified control"
    return finish_demo(out, {"title": title, "seed": seed, "size": size_name, "base": base_info}, t0, say)


def write_arm_configs(out: Path, arm_config: Callable[[str], dict[str, Any]], say: Say) -> dict[str, Path]:
    """Each arm's loop.yaml (validated before it is written); `arm_config(control)` gives its sections."""
    from hone.config import validate_config
    from hone.loop_config import LoopConfig

    configs = {}
    for arm, (control, description) in ARMS.items():
        cfg_path = out / arm / "loop.yaml"
        raw = {"description": f"Arm `{arm}`: {description}.", **arm_config(control)}
        validate_config(raw, LoopConfig, cfg_path)
        cfg_path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(cfg_path, yaml.safe_dump(raw, sort_keys=False))
        configs[arm] = cfg_path
        say(f"arm '{arm}': {description}")
    return configs


def finish_demo(out: Path, facts: dict[str, Any], t0: float, say: Say) -> DemoSummary:
    """The top-level summary.json naming both arms, the reports, and the table on the terminal. `facts`: the
    demo's title, model, seed, size and base."""
    from hone.report.build import write_reports
    from hone.round import SUMMARY, DemoSummary, read_run

    arms = {arm: read_run(out / arm)[0]["loop"] for arm in ARMS}
    summary = DemoSummary(**facts, arms=arms, verified_vs_control=arms_compared(out, arms),
                          seconds=round(time.perf_counter() - t0, 1))
    summary.write(out / SUMMARY)
    write_reports(out)
    print_table(arms, summary.seconds, say, summary.verified_vs_control)
    return summary


def arms_compared(out: Path, arms: dict[str, LoopSummary]) -> dict[str, Any]:
    """Each arm's final model on the same held-out items, paired: what verification buys over the control
    (`hone compare RUN/control RUN/verified` prints the same figures)."""
    from hone.bench.stats import paired_compare
    from hone.compare import load_side

    last = {arm: s.last_promoted().round for arm, s in arms.items()}
    # a demo benches one held-out suite
    correct = {arm: next(iter(load_side(f"{out / arm}:{last[arm]}").suites.values())).correct for arm in arms}
    return {"verified_round": last["verified"], "control_round": last["control"],
            **paired_compare(correct["control"], correct["verified"])}


def run_arms_in_parallel(configs: dict[str, Path], out: Path, threads: int, say: Say) -> None:
    """Each arm is a `hone loop` process of its own, side by side: one core each on a 2-core machine."""
    import subprocess
    import sys
    import threading

    from hone.errors import HoneError

    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    procs = {arm: subprocess.Popen([sys.executable, "-m", "hone.cli", "loop", "--config", str(cfg), "-o",
                                    str(out / arm), "--threads", str(threads)],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for arm, cfg in configs.items()}
    tails: dict[str, list[str]] = {arm: [] for arm in procs}

    def relay(arm: str, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            line = line.rstrip()
            if line and "warn" not in line.lower():
                tails[arm] = (tails[arm] + [line])[-5:]
                say(f"  [{arm}] {line}")

    readers = [threading.Thread(target=relay, args=(a, p), daemon=True) for a, p in procs.items()]
    for t in readers:
        t.start()
    failed = [arm for arm, p in procs.items() if p.wait() != 0]
    for t in readers:
        t.join()
    if failed:
        raise HoneError(f"demo: the {', '.join(failed)} arm failed: {' | '.join(tails[failed[0]][-2:])} "
                        "(run `hone demo` again to resume)")


def print_table(arms: dict[str, LoopSummary], seconds: float, say: Say, compared: dict[str, Any]) -> None:
    say("")
    say("held-out accuracy per round (95% CI); uplift = paired difference vs round 0 on the same items")
    for arm, s in arms.items():
        for r in s.rounds:
            suite = next(iter(r.suites))  # a demo benches one held-out suite
            acc = r.suites[suite]
            up = (r.uplift_vs_round0 or {}).get(suite)
            up_s = f"  uplift {100 * up.diff:+5.1f} pts [{100 * up.ci[0]:+.1f}, {100 * up.ci[1]:+.1f}]" if up else ""
            flag = "" if r.round == 0 else ("  promoted" if r.promoted else "  not promoted")
            say(f"  {arm:<9} round {r.round}: {100 * acc.accuracy:5.1f}% "
                f"[{100 * acc.ci[0]:.1f}, {100 * acc.ci[1]:.1f}]{up_s}{flag}")
    from hone.compare import arms_sentence

    say(arms_sentence(compared))
    say(f"done in {seconds:.0f} s")
