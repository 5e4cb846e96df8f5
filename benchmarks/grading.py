"""Grading speed: HumanEval canonical solutions per second in Hone's sandbox (1 worker, all cores) next to a
plain unsandboxed subprocess per solution (what the original human-eval harness does), and math answers per
second (one process, and worker processes). Prints ratios; writes JSON.

    .venv/bin/python benchmarks/grading.py [--math 2000] [-o benchmarks/out/grading.json]

Inputs: ../shared/data/humaneval_part*.jsonl and gsm8k_test_part1.jsonl (the project's shared sample beside
the checkout). The README quotes no figure from it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import hone.grade as grade
from hone.grade import verify_many
from hone.grade.sandbox import isolation
from hone.importers import import_tasks
from hone.records import Generation

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def plain_subprocess(rows: list[dict]) -> float:
    """The peer: prompt + solution + tests + check() in one fresh `python -c` each, no limits, no isolation."""
    t0 = time.perf_counter()
    for r in rows:
        program = f"{r['prompt']}{r['canonical_solution']}\n{r['test']}\ncheck({r['entry_point']})\n"
        done = subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=30)
        assert done.returncode == 0, r["task_id"]
    return time.perf_counter() - t0


def hone_sandbox(tasks, rows: list[dict], workers: int) -> float:
    items = [(t, Generation(id=t.id, model="canonical", output=r["prompt"] + r["canonical_solution"],
                            finish_reason="stop")) for t, r in zip(tasks, rows)]
    t0 = time.perf_counter()
    verdicts = verify_many(items, workers=workers)
    seconds = time.perf_counter() - t0
    assert all(v.verdict == "pass" for v in verdicts), [v.reason for v in verdicts if v.verdict != "pass"][:3]
    return seconds


def math_rate(n: int, workers: int) -> float:
    """Answers/s; with workers > 1 the worker-process path is forced, whatever the library's own thresholds."""
    grade.MATH_PROCESS_THRESHOLD, grade.MATH_PROCESS_MIN_WORKERS = (0, 2) if workers > 1 else (10**9, 10**9)
    tasks = import_tasks(DATA / "gsm8k_test_part1.jsonl", "gsm8k")
    # Every answer text differs (math-verify caches parses of repeated strings), half of them off by one.
    items = [(t, Generation(id=t.id, sample=s, model="m", finish_reason="stop",
                            output=f"After {s + 2} checks, the total is {int(t.reference) + s % 2:,}."))
             for s in range(n // len(tasks) + 1) for t in tasks][:n]
    t0 = time.perf_counter()
    verdicts = verify_many(items, workers=workers)
    seconds = time.perf_counter() - t0
    assert [v.verdict for v in verdicts] == ["pass" if g.sample % 2 == 0 else "fail" for _, g in items]
    return n / seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--math", type=int, default=2000, help="math answers to grade")
    ap.add_argument("-o", "--out", default="benchmarks/out/grading.json")
    args = ap.parse_args()
    path = DATA / "humaneval_part1.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    tasks = import_tasks(path, "humaneval")
    cores = os.cpu_count() or 1
    n = len(rows)
    plain = plain_subprocess(rows)
    one = hone_sandbox(tasks, rows, 1)
    many = hone_sandbox(tasks, rows, cores)
    math_one = math_rate(args.math, 1)
    math_many = math_rate(args.math, cores)
    result = {
        "cores": cores, "sandbox": isolation().describe(), "humaneval_solutions": n,
        "plain_subprocess_per_s": round(n / plain, 2),
        "sandbox_1_worker_per_s": round(n / one, 2),
        f"sandbox_{cores}_workers_per_s": round(n / many, 2),
        "parallel_speedup": round(one / many, 2),
        "sandbox_cost_vs_plain_subprocess": round(one / plain, 2),
        "math_answers": args.math,
        "math_1_process_per_s": round(math_one, 1),
        f"math_{cores}_processes_per_s": round(math_many, 1),
        "math_parallel_speedup": round(math_many / math_one, 2),
    }
    print(f"HumanEval canonical solutions ({n}), sandbox: {result['sandbox']}")
    print(f"  plain subprocess, no isolation : {result['plain_subprocess_per_s']:7.2f} /s")
    print(f"  Hone sandbox, 1 worker         : {result['sandbox_1_worker_per_s']:7.2f} /s "
          f"({result['sandbox_cost_vs_plain_subprocess']}x the plain time)")
    print(f"  Hone sandbox, {cores} workers        : {n / many:7.2f} /s ({result['parallel_speedup']}x 1 worker)")
    print(f"math answers ({args.math}): {math_one:.0f}/s in one process, {math_many:.0f}/s with {cores} processes "
          f"({result['math_parallel_speedup']}x)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
