"""The `judge` stage and its CLI: resumable, fail-closed, never paying twice, never writing the key; and
`hone failures`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fake_llm_server import FakeLLM
from hone.errors import HoneError
from hone.judge.failures import FailuresConfig, run_failures
from hone.judge.run import JudgeStageConfig, run_judge
from hone.records import Generation, Verdict, read_records, write_records
from hone.runs import manifest_for
from judge_support import (FAST_YAML, SECRET, arithmetic, env_for, expected, fake, fast_judge,  # noqa: F401
                           files_containing)


def _write(tmp_path: Path, items) -> tuple[Path, Path]:
    write_records(tmp_path / "tasks.jsonl", [t for t, _ in items])
    write_records(tmp_path / "gens.jsonl", [g for _, g in items])
    return tmp_path / "tasks.jsonl", tmp_path / "gens.jsonl"


def _cli(tmp_path: Path, server: FakeLLM, run: str, *extra: str) -> subprocess.Popen:
    (tmp_path / "fast.yaml").write_text(FAST_YAML)
    out = tmp_path / run / "verdicts.jsonl"
    cmd = [sys.executable, "-m", "hone.cli", "judge", "--tasks", str(tmp_path / "tasks.jsonl"), "--generations",
           str(tmp_path / "gens.jsonl"), "-o", str(out), "--judge", "anthropic:claude-haiku-5-5", "--config",
           str(tmp_path / "fast.yaml"), *extra]
    return subprocess.Popen(cmd, env=env_for(server, dict(os.environ)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _server_conversations(cache: Path) -> set[str]:
    """The fake server's hash of every conversation whose answer is committed in a judge cache."""
    import sqlite3

    rows = sqlite3.connect(cache).execute("SELECT prompt FROM answers").fetchall()
    convs = set()
    for (prompt,) in rows:
        p = json.loads(prompt)
        convs.add(FakeLLM.conversation(p["system"], [{"role": r, "content": c} for r, c in p["messages"]]))
    return convs


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_equals_an_uninterrupted_run_and_pays_nothing_twice(tmp_path):
    items = arithmetic(40, fault={5: "malformed", 17: "500"})
    _write(tmp_path, items)
    with FakeLLM(key=SECRET, latency=0.05) as clean:
        proc = _cli(tmp_path, clean, "clean", "--concurrency", "4")
        log_clean = proc.communicate(timeout=120)[0]
        assert proc.returncode == 0, log_clean
    with FakeLLM(key=SECRET, latency=0.05) as server:
        proc = _cli(tmp_path, server, "killed", "--concurrency", "4")
        deadline = time.monotonic() + 60
        while sum(server.paid.values()) < 15 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        log_killed = proc.communicate(timeout=30)[0]
        partial = tmp_path / "killed" / "verdicts.jsonl.partial"
        assert proc.returncode == -signal.SIGKILL and partial.exists() and not (tmp_path / "killed/verdicts.jsonl").exists()
        assert len(partial.read_text().splitlines()) < 40
        committed = _server_conversations(tmp_path / "killed" / "judge_cache.sqlite")
        proc = _cli(tmp_path, server, "killed", "--concurrency", "4")
        log_rerun = proc.communicate(timeout=120)[0]
        assert proc.returncode == 0, log_rerun
        assert "resuming" in log_rerun
    clean_out = (tmp_path / "clean" / "verdicts.jsonl").read_text()
    assert (tmp_path / "killed" / "verdicts.jsonl").read_text() == clean_out  # same final output, byte for byte
    assert [v.verdict for v in read_records(tmp_path / "clean" / "verdicts.jsonl", Verdict)] == expected(items)
    assert set(server.paid) == set(clean.paid)  # the same questions were asked
    assert all(server.paid[c] == 1 for c in committed)  # nothing committed before the kill was paid again
    assert sum(server.paid.values()) - len(server.paid) <= 4  # at most the calls in flight were paid twice
    for text in (log_clean, log_killed, log_rerun):
        assert SECRET not in text
    assert not files_containing(tmp_path, SECRET)


def test_budget_stop_leaves_the_stage_unfinished_and_a_rerun_judges_only_the_rest(fake, tmp_path):
    items = arithmetic(30)
    tasks, gens = _write(tmp_path, items)
    out = tmp_path / "run" / "verdicts.jsonl"
    config = JudgeStageConfig(judge=fast_judge("anthropic:claude-haiku-5-5", budget_usd=0.0008, concurrency=4))
    first = run_judge(config, tasks, gens, out)
    assert 0 < first.counts["unfinished"] < 30 and len(first.verdicts) == 30
    assert [v.verdict for v in read_records(out, Verdict)] == [v.verdict for v in first.verdicts]  # all items named
    assert json.loads(manifest_for(out).read_text())["status"] == "running"
    paid = sum(fake.paid.values())
    config = JudgeStageConfig(judge=fast_judge("anthropic:claude-haiku-5-5", budget_usd=1.0, concurrency=4))
    second = run_judge(config, tasks, gens, out)
    assert second.counts["unfinished"] == 0 and not second.skipped
    assert [v.verdict for v in second.verdicts] == expected(items)
    assert sum(fake.paid.values()) - paid == first.counts["unfinished"] and max(fake.paid.values()) == 1
    assert json.loads(manifest_for(out).read_text())["status"] == "complete"
    assert run_judge(JudgeStageConfig(judge=fast_judge("anthropic:claude-haiku-5-5")), tasks, gens, out).skipped


def test_cli_judges_exports_failures_and_never_writes_the_key(fake, tmp_path):
    items = arithmetic(9, fault={4: "malformed-always"})
    _write(tmp_path, items)
    proc = _cli(tmp_path, fake, "run", "--concurrency", "3")
    log = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, log
    assert "wrote 9 verdicts" in log and "pass 5, fail 3, error 1" in log and "invalid_reply" in log
    out = tmp_path / "run" / "verdicts.jsonl"
    fails = tmp_path / "run" / "failures.jsonl"
    cmd = [sys.executable, "-m", "hone.cli", "failures", "--verdicts", str(out), "-o", str(fails), "--include-errors"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env_for(fake, dict(os.environ)))
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in fails.read_text().splitlines()]
    assert [(r["id"], r["verdict"]) for r in rows] == [("add-2", "fail"), ("add-4", "error"), ("add-5", "fail"),
                                                       ("add-8", "fail")]
    row = rows[0]
    assert row["category"] == "addition" and row["prompt"] == "What is 12 + 11?" and row["reference"] == "23"
    assert row["output"].startswith("12 + 11 = 24") and row["judge"] == "anthropic:claude-haiku-5-5" and row["reason"]
    assert SECRET not in log + res.stdout + res.stderr and not files_containing(tmp_path, SECRET)


def test_failures_refuse_verdicts_about_other_answers(fake, tmp_path):
    items = arithmetic(3)
    tasks, gens = _write(tmp_path, items)
    out = tmp_path / "verdicts.jsonl"
    run_judge(JudgeStageConfig(judge=fast_judge("anthropic")), tasks, gens, out)
    assert run_failures(FailuresConfig(), out, tmp_path / "f.csv").counts["failures"] == 1
    assert (tmp_path / "f.csv").read_text().startswith("id,sample,category")
    write_records(gens, [g.model_copy(update={"output": "changed"}) for _, g in items])
    with pytest.raises(HoneError, match="judged another answer"):
        run_failures(FailuresConfig(), out, tmp_path / "f.jsonl")


def test_pairwise_stage_reports_missing_references_as_errors(fake, tmp_path):
    items = arithmetic(4, wrong_every=2)
    tasks, gens = _write(tmp_path, items)
    refs = [Generation(id=t.id, model="ref", output=f"It is {t.reference}.", finish_reason="stop") for t, _ in items]
    write_records(tmp_path / "ref.jsonl", refs[:3])
    result = run_judge(JudgeStageConfig(judge=fast_judge("anthropic")), tasks, gens, tmp_path / "pair.jsonl",
                       pairwise=tmp_path / "ref.jsonl")
    assert [v.verdict for v in result.verdicts] == ["tie", "loss", "tie", "error"]
    assert result.verdicts[3].evidence["error_kind"] == "no_reference" and result.counts["unfinished"] == 0
    assert result.report.inconsistent_ties == 0 and result.counts["tie"] == 2


def test_generations_must_belong_to_the_tasks(fake, tmp_path):
    tasks, gens = _write(tmp_path, arithmetic(2))
    write_records(gens, [Generation(id="nope", model="m", output="1", finish_reason="stop")])
    with pytest.raises(HoneError, match="generation 'nope' #0 has no task"):
        run_judge(JudgeStageConfig(judge=fast_judge("anthropic")), tasks, gens, tmp_path / "v.jsonl")
