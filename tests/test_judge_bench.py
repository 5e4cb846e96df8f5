"""`hone bench --judge SPEC`: open tasks are compared with the reference model's answers by the LLM judge, in
both orders, through the same cache and ledger."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from hone.cli import app
from hone.records import Generation, Task, write_records
from judge_support import SECRET, fake, files_containing  # noqa: F401 - `fake` is a fixture


def test_bench_judges_open_tasks_pairwise(fake, tmp_path, tiny_model_dir):
    tasks = [Task(id=f"colour-{i}", kind="open", prompt=f"Name colour number {i}.", reference=c)
             for i, c in enumerate(["blue", "green", "violet"])]
    write_records(tmp_path / "open.jsonl", tasks)
    write_records(tmp_path / "ref.jsonl", [Generation(id=t.id, model="ref", output=f"It is {t.reference}.",
                                                      finish_reason="stop") for t in tasks])
    out = tmp_path / "bench"
    result = CliRunner().invoke(app, ["bench", "--model", str(tiny_model_dir), "--tasks", f"colours={tmp_path}/open.jsonl",
                                      "-o", str(out), "--reference", str(tmp_path / "ref.jsonl"), "--judge",
                                      "anthropic", "--max-new-tokens", "8"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "bench.json").read_text())
    summary = report["suites"]["colours"]["comparison"]["open"]
    # The random tiny model never names the colour; the reference always does: every pair is a loss.
    assert summary["judge"] == "anthropic:claude-haiku-5-5" and summary["loss"] == 3 and summary["error"] == 0
    assert sum(fake.paid.values()) == 6  # three pairs, both orders
    assert not files_containing(tmp_path, SECRET)
