"""Judge throughput against a local Anthropic-compatible server with a fixed latency per call.

The peer is the way an earlier project judged: one call after another with the synchronous SDK. Hone's judge
(cache, budget, limiter, retries, schema validation all on) runs at concurrency 1, 8 and 32 on fresh caches,
then once more at 32 on a warm cache. The bare async SDK at 32 shows the ceiling the machine allows. The bound at concurrency c is c / latency items per second; the target
is at least 0.8 of it at 32.

    .venv/bin/python benchmarks/judge.py [--latency 0.2] [-o benchmarks/out/judge.json]

Inputs: none to fetch (the Anthropic-compatible server is a local fake started in the run; no API key).
The README quotes no figure from it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from judge_support import arithmetic  # noqa: E402

from hone.judge import judge_all, make_judge  # noqa: E402
from hone.judge.prompts import GradeReply, grade_request, parse_reply  # noqa: E402

KEY = "bench-key-not-a-secret"


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    """The fake provider in its own process, so it does not share the judge's interpreter lock."""
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "fake_llm_server.py"), "--latency", str(latency),
                             "--key", KEY], stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def sequential_baseline(items, model: str) -> float:
    """One synchronous call at a time, no cache: items per second."""
    import anthropic

    client = anthropic.Anthropic(max_retries=0)
    t0 = time.perf_counter()
    for task, gen in items:
        req = grade_request(task, gen.output, 256)
        msg = client.messages.create(model=model, max_tokens=req.max_tokens, system=req.system, messages=req.chat())
        parse_reply(msg.content[0].text, GradeReply, task.id)
    return len(items) / (time.perf_counter() - t0)


def raw_sdk_rate(items, concurrency: int, model: str) -> float:
    """The SDK alone (AsyncAnthropic, a semaphore, nothing else): the ceiling this machine allows at this load."""
    import asyncio

    import anthropic

    async def main() -> float:
        client = anthropic.AsyncAnthropic(max_retries=0)
        sem = asyncio.Semaphore(concurrency)

        async def one(task, gen) -> None:
            req = grade_request(task, gen.output, 256)
            async with sem:
                await client.messages.create(model=model, max_tokens=256, system=req.system, messages=req.chat())

        t0 = time.perf_counter()
        await asyncio.gather(*(one(t, g) for t, g in items))
        rate = len(items) / (time.perf_counter() - t0)
        await client.close()
        return rate

    return asyncio.run(main())


def hone_rate(items, concurrency: int, cache: Path, model: str) -> float:
    judge = make_judge(f"anthropic:{model}", cache_path=cache, concurrency=concurrency, budget_usd=10.0,
                       max_tokens=256)
    t0 = time.perf_counter()
    verdicts = judge_all(judge, items)
    rate = len(items) / (time.perf_counter() - t0)
    if any(v.verdict == "error" for v in verdicts):
        raise SystemExit(f"concurrency {concurrency}: {sum(v.verdict == 'error' for v in verdicts)} errors")
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("-o", "--out", type=Path, default=REPO / "benchmarks" / "out" / "judge.json")
    args = p.parse_args()
    model = "claude-haiku-5-5"
    proc, url = start_server(args.latency)
    os.environ.update(ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY=KEY)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            seq = sequential_baseline(arithmetic(16), model)
            rows.append({"runner": "sequential SDK loop (peer)", "concurrency": 1, "items": 16,
                         "items_per_s": seq, "bound": 1 / args.latency})
            for c in (1, 8, 32):
                n = max(16, 8 * c)
                rate = hone_rate(arithmetic(n), c, Path(tmp) / f"c{c}.sqlite", model)
                rows.append({"runner": "hone judge", "concurrency": c, "items": n, "items_per_s": rate,
                             "bound": c / args.latency})
            raw = raw_sdk_rate(arithmetic(256), 32, model)
            rows.append({"runner": "AsyncAnthropic alone (no cache, limits, validation)", "concurrency": 32,
                         "items": 256, "items_per_s": raw, "bound": 32 / args.latency})
            warm = hone_rate(arithmetic(256), 32, Path(tmp) / "c32.sqlite", model)
            rows.append({"runner": "hone judge, warm cache", "concurrency": 32, "items": 256, "items_per_s": warm,
                         "bound": None})
    finally:
        proc.terminate()
        proc.wait()
    for r in rows:
        r["items_per_s"] = round(r["items_per_s"], 2)
        r["of_bound"] = round(r["items_per_s"] / r["bound"], 3) if r["bound"] else None
        r["vs_sequential"] = round(r["items_per_s"] / rows[0]["items_per_s"], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"latency_s": args.latency, "rows": rows}, indent=2) + "\n")
    print(f"latency per call: {args.latency * 1000:.0f} ms\n")
    print("| runner | concurrency | items | items/s | bound (c/latency) | of bound | vs sequential |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        bound = f"{r['bound']:.1f}" if r["bound"] else "-"
        of = f"{r['of_bound']:.2f}" if r["of_bound"] else "-"
        print(f"| {r['runner']} | {r['concurrency']} | {r['items']} | {r['items_per_s']:.1f} | {bound} | {of} | "
              f"{r['vs_sequential']:.1f}x |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
