"""Which improvement method helps a model, per minute of compute: RFT, GRPO, self-critique and their controls.

From one imported base (SmolLM2-135M-Instruct from `hone demo --model smollm2`'s cache, or the tiny model with
--smoke) and, per seed, the same training prompts and held-out items (sums and differences of two-digit numbers,
`hone.synthetic.add_sub_splits`), every arm improves the base and its final model is benchmarked by the same
function on the same items:

- `rft`: the verified loop (sample, keep what the verifier passed, LoRA, merge, gate), `hone loop`;
- `unverified`: the same loop training on its own samples unverified (RFT's control);
- `critique`: the loop with `improve: critique` (the model critiques and rewrites its failures, the verifier
  re-checks, verified rewrites become data);
- `grpo`: `hone train --objective grpo` on the training prompts with the verifier as the reward, merged with proof
  and gated against the base like a loop round;
- `random-reward`: GRPO with a Bernoulli reward at the base's pass rate (its held-out greedy accuracy), blind to
  the answer (GRPO's control).

The loop arms run `--rounds` rounds (one: 100 fresh prompts, 4 samples each, 30 LoRA steps, the SmolLM2 demo's
round 1); the base is benchmarked once per seed (the `rft` arm's round 0, copied into the other loop arms and not
counted in any arm's time). Each GRPO arm runs 18 steps of 4 prompts x 8 answers (its wall time, like every
arm's, is measured and reported: the summary compares points per minute, not equal budgets).
Per method and seed it prints the held-out accuracy with its 95% CI, the paired uplift over the base, the paired
difference against the arm's control, the guard suite's change (`--guard`: MMLU rows, scored by log-likelihood),
the stop rate, the scorer gap (the share of held-out answers the verifier and the strict second reading judge
differently), the wall time and the tokens (loops: answer tokens sampled on the training prompts; GRPO: its
rollouts' prompt and answer tokens, TRL's count). Writes `<arm>/arm.json` per finished arm and `<out>/seed-N/result.json` per
finished seed (a later run reads them back instead of redoing them, so `--arms` can add arms to a seed) and
`<out>/methods.json`.

    .venv/bin/python benchmarks/methods.py --seeds 0 1 2 -o benchmarks/out/methods \\
        --guard ../shared/data/mmlu_sample.jsonl                      # SmolLM2, ~30 min per seed on 2 cores
    .venv/bin/python benchmarks/methods.py --smoke -o /tmp/methods    # the tiny model, every arm, minutes
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from hone.bench.stats import paired_compare, wilson_interval
from hone.compare import final_round
from hone.records import iter_jsonl, write_records

ARMS = ("rft", "unverified", "critique", "grpo", "random-reward")
CONTROL_OF = {"rft": "unverified", "critique": "unverified", "grpo": "random-reward"}
SUITE = "add-sub"
STOP_TOLERANCE = 0.05  # the gate refuses a model that stops this much less often


class Size:
    def __init__(self, train: int, heldout: int, rounds: int, samples: int, lora_steps: int, grpo_batch: int,
                 grpo_steps: int, max_new_tokens: int):
        self.train, self.heldout, self.rounds, self.samples = train, heldout, rounds, samples
        self.lora_steps, self.grpo_batch, self.grpo_steps = lora_steps, grpo_batch, grpo_steps
        self.max_new_tokens = max_new_tokens


SIZES = {
    # One round of the SmolLM2 demo (hone/demo_smollm2.py): 100 fresh prompts, 4 samples each, 30 LoRA steps.
    # GRPO: 18 steps of 4 prompts x 8 answers (576 answers; RFT samples 400).
    "full": Size(train=100, heldout=400, rounds=1, samples=4, lora_steps=30, grpo_batch=32, grpo_steps=18,
                 max_new_tokens=16),
    "smoke": Size(train=8, heldout=8, rounds=1, samples=2, lora_steps=2, grpo_batch=8, grpo_steps=2,
                  max_new_tokens=8),
}


def base_model(out: Path, smoke: bool) -> Path:
    """The SmolLM2 base imported once (the demo's cache and importer), or the tiny model for a smoke run."""
    if smoke:
        from hone.models.tiny import build_tiny_model

        model = out / "base" / "model"
        return model if (model / "config.json").exists() else build_tiny_model(model, seed=0)
    from hone.demo_smollm2 import cache_dir, fetch_smollm2, import_base

    return import_base(out, fetch_smollm2(cache_dir(), print), print)[0]


def bench(model: Path, suites: dict[str, Path], out: Path, size: Size) -> dict[str, Any]:
    """Held-out correctness and stop rate per suite; a choice suite (the guard) scored by log-likelihood."""
    from hone.bench.run import BenchConfig, run_bench
    from hone.generate.base import GenParams

    config = BenchConfig(params=GenParams(max_new_tokens=size.max_new_tokens, batch_size=200),
                         choice_scoring="loglik")
    run_bench(config, model, [f"{name}={path}" for name, path in suites.items()], out)
    return read_bench(out)


def read_bench(bench_dir: Path) -> dict[str, Any]:
    """Correctness per item and stop rate per suite of a finished bench folder (a loop round's, or `bench`'s)."""
    from hone.bench.report import BenchReport
    from hone.compare import load_side

    figures = BenchReport.model_validate_json((bench_dir / "bench.json").read_text()).figures()
    return {"correct": {name: s.correct for name, s in load_side(str(bench_dir)).suites.items()},
            "stop_rates": {name: f.stop_rate for name, f in figures.items()},
            "scorer_gaps": {name: f.scorer_gap for name, f in figures.items()}}


def loop_arm(arm: str, base: Path, data: dict[str, Path], size: Size, seed: int, out: Path,
             round0: Path | None) -> dict[str, Any]:
    """One loop run of `size.rounds` rounds. `round0` (the first loop arm's round-0 folder, the base benchmarked on
    the same items with the same settings) is copied in, so the base is benchmarked once per seed; the first arm's
    time for it is not counted."""
    config = {
        "base_model": str(base.resolve()), "train_tasks": str(data["train"].resolve()),
        "heldout": {SUITE: str(data["heldout"].resolve())}, "rounds": size.rounds, "judge": "verifier",
        "improve": "critique" if arm == "critique" else "resample",
        "control": "unverified" if arm == "unverified" else "none", "seed": seed, "device": "cpu",
        "sample": {"n": size.samples, "temperature": 0.7, "max_new_tokens": size.max_new_tokens, "batch_size": 200,
                   "resample_unsolved": 0, "prompts_per_round": size.train // size.rounds},
        "critique": {"max_new_tokens": 4 * size.max_new_tokens},
        "train": {"method": "lora", "lora_r": 16, "lora_alpha": 32, "learning_rate": 5e-4,
                  "max_steps": size.lora_steps, "per_device_batch_size": 8, "seed": seed, "max_length": 256},
        "bench": {"max_new_tokens": size.max_new_tokens, "batch_size": 200},
        "gate": {"tolerance": 0.01, "stop_tolerance": STOP_TOLERANCE},
    }
    path, run = out / f"{arm}.yaml", out / arm
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    if round0 is not None and not (run / "round-0").exists():
        shutil.copytree(round0, run / "round-0")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hone.cli", "loop", "--config", str(path), "-o", str(run)],
                   check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    if round0 is None:  # this arm benchmarked the base: that is the seed's, not the method's, time
        seconds -= (run / "round-0" / "bench" / "bench.json").stat().st_mtime - (path.stat().st_mtime)
    summary = json.loads((run / "summary.json").read_text())
    tokens = sum(int(obj.get("tokens", 0)) for f in run.glob("round-*/samples.jsonl") for _, obj in iter_jsonl(f))
    final = final_round(run)
    return {"model": Path(summary["final_model"]), "seconds": seconds, "tokens": tokens,
            "promoted": sum(bool(r["promoted"]) for r in summary["rounds"][1:]),
            **read_bench(run / f"round-{final}" / "bench")}


def grpo_settings(size: Size, seed: int, **more: Any) -> dict[str, Any]:
    """The settings measured to learn on SmolLM2 (README: 12 steps gave +11.8 points): 4 prompts x 8 answers a
    step, LoRA r 16, lr 1e-4, no KL term."""
    return {"method": "lora", "lora_r": 16, "lora_alpha": 32, "learning_rate": 1e-4, "num_generations": 8,
            "per_device_batch_size": size.grpo_batch, "max_completion_length": size.max_new_tokens,
            "temperature": 0.7, "beta": 0.0, "seed": seed, "max_length": 256, "logging_steps": 1, **more}


def grpo_arm(arm: str, base: Path, data: dict[str, Path], size: Size, seed: int, out: Path, p_base: float,
             base_bench: dict[str, Any]) -> dict[str, Any]:
    """`size.grpo_steps` steps of GRPO, merged with proof, benchmarked and gated against the base like a loop
    round."""
    from hone.gate import decide
    from hone.merge.run import MergeConfig, run_merge
    from hone.train.grpo import GRPOTrainConfig, nothing_learned, run_grpo

    reward = {"reward": "random", "random_reward_p": p_base} if arm == "random-reward" else {}
    t0 = time.perf_counter()
    trained = run_grpo(GRPOTrainConfig(**grpo_settings(size, seed, max_steps=size.grpo_steps, **reward)),
                       data["train"], base, out / arm / "adapter")
    promoted, result, model = False, base_bench, base
    if not nothing_learned(trained):  # no group's rewards ever varied: the adapter is zero, the base stays
        merged = run_merge(MergeConfig(), base, trained.outputs["adapter"], out / arm / "model").outputs["model"]
        candidate = bench(merged, {SUITE: data["heldout"]}, out / arm / "bench", size)
        promoted = decide(base_bench["correct"], candidate["correct"], 0.01, trained={SUITE},
                          stop_rates=(base_bench["stop_rates"], candidate["stop_rates"]),
                          stop_tolerance=STOP_TOLERANCE)["promoted"]
        result, model = (candidate, merged) if promoted else (base_bench, base)
    return {"model": model, "seconds": time.perf_counter() - t0, "tokens": int(trained.report.training.tokens or 0),
            "promoted": int(promoted), "steps": size.grpo_steps, **result,
            "reward": [trained.report.rewards["first_reward"], trained.report.rewards["final_reward"]]}


def kept(arm_dir: Path, run: Any) -> dict[str, Any]:
    """An arm's result, from `arm.json` once it has finished: its wall time is measured once, not by a re-run that
    finds its stages done."""
    path = arm_dir / "arm.json"
    if not path.exists():
        path.write_text(json.dumps(run(), default=str) + "\n")
    result = json.loads(path.read_text())
    return {**result, "model": Path(result["model"])}


def run_seed(seed: int, base: Path, out: Path, size: Size, guard: Path | None,
             chosen: tuple[str, ...] = ARMS) -> dict[str, Any]:
    """Every chosen arm on this seed's items (`rft` always: it benchmarks the base)."""
    from hone.synthetic import add_sub_splits

    splits = add_sub_splits(seed, size.train, size.heldout)
    data = {"train": out / "data" / "train_tasks.jsonl", "heldout": out / "data" / "heldout.jsonl"}
    write_records(data["train"], splits["train"])
    write_records(data["heldout"], splits["heldout"])
    if guard:  # MMLU rows (the shared sample) as Tasks: what `hone tasks import --format mmlu` writes
        from hone.importers import import_tasks

        write_records(out / "data" / "guard.jsonl", import_tasks(guard, "mmlu"))
        guard = out / "data" / "guard.jsonl"
    arms: dict[str, dict[str, Any]] = {"rft": kept(out / "rft", lambda: loop_arm("rft", base, data, size, seed, out,
                                                                                  None))}
    base_bench = read_bench(out / "rft" / "round-0" / "bench")
    for arm in [a for a in ("unverified", "critique") if a in chosen]:
        arms[arm] = kept(out / arm, lambda: loop_arm(arm, base, data, size, seed, out, out / "rft" / "round-0"))
    p_base = sum(base_bench["correct"][SUITE].values()) / len(base_bench["correct"][SUITE])
    for arm in [a for a in ("grpo", "random-reward") if a in chosen]:
        arms[arm] = kept(out / arm, lambda: grpo_arm(arm, base, data, size, seed, out, p_base, base_bench))
    guards = {}
    if guard:  # the guard suite, scored by log-likelihood, once per distinct final model
        for name, model in [("base", base)] + [(arm, a["model"]) for arm, a in arms.items()]:
            same = next((g for m, g in guards.values() if m == model), None)
            guards[name] = (model, same or bench(model, {"guard": guard}, out / name / "guard-bench", size))
    rows = {}
    for arm, a in arms.items():
        correct = a["correct"][SUITE]
        passed = sum(correct.values())
        row = {"accuracy": passed / len(correct), "ci95": list(wilson_interval(passed, len(correct))),
               "uplift": paired_compare(base_bench["correct"][SUITE], correct),
               "stop_rate": a["stop_rates"][SUITE], "scorer_gap": a["scorer_gaps"][SUITE],
               "seconds": round(a["seconds"], 1), "tokens": a["tokens"],
               "promoted": a["promoted"], **({"steps": a["steps"], "reward": a["reward"]} if "steps" in a else {})}
        if CONTROL_OF.get(arm) in arms:
            row["vs_control"] = paired_compare(arms[CONTROL_OF[arm]]["correct"][SUITE], correct)
        if guard:
            row["guard"] = paired_compare(guards["base"][1]["correct"]["guard"], guards[arm][1]["correct"]["guard"])
        rows[arm] = row
    return {"seed": seed, "base": {"accuracy": p_base, "stop_rate": base_bench["stop_rates"][SUITE]}, "arms": rows}


def _ci(c: dict[str, Any]) -> str:
    return f"{100 * c['difference']:+.1f} [{100 * c['ci95'][0]:+.1f}, {100 * c['ci95'][1]:+.1f}]"


def _share(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def print_table(results: list[dict[str, Any]]) -> None:
    print("\n| method | seed | held-out acc | uplift vs base (pts, 95% CI) | vs its control | guard change | "
          "stop rate | scorer gap | promoted | wall s | tokens |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| base | {r['seed']} | {100 * r['base']['accuracy']:.1f}% | | | | "
              f"{100 * (r['base']['stop_rate'] or 0):.0f}% | | | | |")
        for arm, row in r["arms"].items():
            print(f"| {arm} | {r['seed']} | {100 * row['accuracy']:.1f}% [{100 * row['ci95'][0]:.1f}, "
                  f"{100 * row['ci95'][1]:.1f}] | {_ci(row['uplift'])} | "
                  f"{_ci(row['vs_control']) + ' vs ' + CONTROL_OF[arm] if 'vs_control' in row else ''} | "
                  f"{_ci(row['guard']) if 'guard' in row else ''} | {100 * (row['stop_rate'] or 0):.0f}% | "
                  f"{_share(row['scorer_gap'])} | {row['promoted']} | {row['seconds']:.0f} | {row['tokens']} |")


def print_summary(results: list[dict[str, Any]]) -> None:
    """Per method over the seeds that ran it: the mean uplift, on how many seeds its CI (and its difference from
    its control) lies above zero, the mean wall time, and points gained per minute of that time."""
    print("\n| method | seeds | mean uplift (pts) | CI above 0 | vs control, CI above 0 | mean wall min | "
          "pts per min |")
    print("|---|---|---|---|---|---|---|")
    for arm in ARMS:
        rows = [r["arms"][arm] for r in results if arm in r["arms"]]
        if not rows:
            continue
        uplift = sum(100 * row["uplift"]["difference"] for row in rows) / len(rows)
        minutes = sum(row["seconds"] for row in rows) / len(rows) / 60
        above = sum(row["uplift"]["ci95"][0] > 0 for row in rows)
        control = [row["vs_control"]["ci95"][0] > 0 for row in rows if "vs_control" in row]
        print(f"| {arm} | {len(rows)} | {uplift:+.1f} | {above}/{len(rows)} | "
              f"{f'{sum(control)}/{len(control)}' if control else ''} | {minutes:.1f} | {uplift / minutes:+.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--out", type=Path, default=Path("benchmarks/out/methods"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--guard", type=Path,
                        help="MMLU rows (e.g. ../shared/data/mmlu_sample.jsonl): a guard suite that must not regress")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS),
                        help="a subset of the arms (rft always runs: it benchmarks the base)")
    parser.add_argument("--smoke", action="store_true", help="the tiny model and a few items: shows it runs")
    args = parser.parse_args()
    size = SIZES["smoke" if args.smoke else "full"]
    args.out.mkdir(parents=True, exist_ok=True)
    base = base_model(args.out, args.smoke)
    results = []
    for seed in args.seeds:  # a finished seed (and arm) is read back, so later runs can add seeds and arms
        done = args.out / f"seed-{seed}" / "result.json"
        if not done.exists() or not set(args.arms) <= set(json.loads(done.read_text())["arms"]):
            result = run_seed(seed, base, done.parent, size, args.guard, tuple(args.arms))
            done.write_text(json.dumps(result, indent=2) + "\n")
        results.append(json.loads(done.read_text()))
    (args.out / "methods.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print_summary(results)


if __name__ == "__main__":
    main()
