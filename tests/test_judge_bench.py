"""`hone bench --judge SPEC`: open tasks are compared with the reference model's answers by the LLM judge, in
both orders, through the same cache and ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from hone.cli import app
from hone.records import Generation, Task, write_records
from judge_support import FAST_YAML, SECRET, env_for, fake, files_containing  # noqa: F401 - `fake` is a fixture


def test_bench_judges_open_tasks_pairwise(fake, tmp_path, tiny_model_dir):
    tasks = [Task(id=f"colour-{i}", kind="open", prompt=f"Name colour number {i}.", reference=c)
             for i, c in enumerate(["blue", "green", "violet"])]
    write_records(tmp_path / "open.jsonl", tasks)
    write_records(tmp_path / "ref.jsonl", [Generation(id=t.id, model="ref", output=f"It is {t.reference}.",
                                                      finish_reason="stop") for t in tasks])
    out = tmp_path / "bench"
    result = CliRunner().invoke(app, ["bench", "--model", str(tiny_model_dir), "--tasks", f"colours={tmp_path}/open.jsonl",
                                      "-o", str(out), "--reference", str(tmp_path / "ref.jsonl"), "--judge",
                                      "anthropic", "--max-new-tokens", "8", "--budget-usd", "5"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "bench.json").read_text())
    summary = report["suites"]["colours"]["comparison"]["open"]
    # The random tiny model never names the colour; the reference always does: every pair is a loss.
    assert summary["judge"] == "anthropic:claude-haiku-5-5" and summary["loss"] == 3 and summary["error"] == 0
    assert sum(fake.paid.values()) == 6  # three pairs, both orders
    assert not files_containing(tmp_path, SECRET)


COLOURS = ["blue", "green", "violet", "red", "amber", "teal", "ochre", "mauve", "cyan", "olive", "pink", "grey"]


def _open_bench(tmp_path, tiny_model_dir, *extra: str) -> list[str]:
    """`hone bench --judge anthropic` on twelve open tasks against a reference: its arguments."""
    if not (tmp_path / "open.jsonl").exists():
        tasks = [Task(id=f"colour-{i}", kind="open", prompt=f"Name colour number {i}.", reference=c)
                 for i, c in enumerate(COLOURS)]
        write_records(tmp_path / "open.jsonl", tasks)
        write_records(tmp_path / "ref.jsonl", [Generation(id=t.id, model="ref", output=f"It is {t.reference}.",
                                                          finish_reason="stop") for t in tasks])
        (tmp_path / "judge.yaml").write_text(FAST_YAML)
    return ["bench", "--model", str(tiny_model_dir), "--tasks", f"colours={tmp_path}/open.jsonl", "-o",
            str(tmp_path / "bench"), "--reference", str(tmp_path / "ref.jsonl"), "--judge", "anthropic",
            "--max-new-tokens", "8", "--judge-config", str(tmp_path / "judge.yaml"), *extra]


def test_bench_refuses_a_paid_judge_without_a_budget_before_any_call(fake, tmp_path, tiny_model_dir):
    res = subprocess.run([sys.executable, "-m", "hone.cli", *_open_bench(tmp_path, tiny_model_dir)],
                         capture_output=True, text=True, env=env_for(fake, dict(os.environ)))
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith("error: ") and "costs money" in res.stderr and "--budget-usd" in res.stderr
    assert "--no-budget" in res.stderr and sum(fake.paid.values()) == 0
    assert not (tmp_path / "bench" / "colours").exists()  # refused before generating anything


def test_bench_judge_stops_at_the_budget_and_a_rerun_with_more_finishes(fake, tmp_path, tiny_model_dir):
    from hone.errors import HoneError
    from hone.judge.cache import judge_spend

    capped = CliRunner().invoke(app, _open_bench(tmp_path, tiny_model_dir, "--budget-usd", "0.001", "--concurrency",
                                                 "2"))
    spent = judge_spend(tmp_path / "bench")
    assert isinstance(capped.exception, HoneError) and "not finished" in str(capped.exception)
    assert "--budget-usd" in str(capped.exception)
    assert 0 < spent["usd"] <= 0.001 and 0 < spent["calls"] == sum(fake.paid.values()) < 24, spent
    report = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert report["suites"]["colours"]["comparison"]["open"]["error"] > 0  # the stopped pairs, shown as such
    done = CliRunner().invoke(app, _open_bench(tmp_path, tiny_model_dir, "--budget-usd", "1"))
    assert done.exit_code == 0, done.output
    summary = json.loads((tmp_path / "bench" / "bench.json").read_text())["suites"]["colours"]["comparison"]["open"]
    assert summary["loss"] == len(COLOURS) and summary["error"] == 0
    assert sum(fake.paid.values()) == 2 * len(COLOURS) and max(fake.paid.values()) == 1  # nothing paid twice
    mtime = (tmp_path / "bench" / "bench.json").stat().st_mtime_ns
    again = CliRunner().invoke(app, _open_bench(tmp_path, tiny_model_dir, "--budget-usd", "1"))
    assert again.exit_code == 0 and (tmp_path / "bench" / "bench.json").stat().st_mtime_ns == mtime
