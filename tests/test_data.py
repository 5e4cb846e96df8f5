import subprocess
import sys

import pytest

from hone.data.build import build_bootstrap, build_dpo, build_sft, build_sft_from_samples
from hone.data.mix import decontaminate, dedup, mix
from hone.data.run import DataStageConfig, run_data
from hone.errors import HoneError
from hone.hashing import text_sha256
from hone.importers import import_tasks
from hone.overlap import OverlapIndex
from hone.records import (Critique, Generation, Message, PreferencePair, SFTExample, Task, Verdict, read_records,
                          write_records)

HONE = [sys.executable, "-m", "hone.cli"]


def _tasks(n=6):
    return {f"t{i}": Task(id=f"t{i}", kind="math", prompt=f"What is {i} + {10 * i + 7} - 3?",
                          reference=str(11 * i + 4)) for i in range(n)}


def _critique(i, original_verdict="fail", rewrite_verdict="pass", **kw):
    fields = dict(id=f"t{i}", mode="self-critique", model="m", judge="verifier", original=f"wrong {i}",
                  original_verdict=original_verdict, feedback="f", critique="c", rewrite=f"right {11 * i + 4}",
                  rewrite_verdict=rewrite_verdict, accepted=rewrite_verdict == "pass", round=1)
    return Critique(**{**fields, **kw})


def test_only_fail_to_pass_rewrites_become_rows():
    tasks = _tasks()
    critiques = [_critique(0), _critique(1, "tie"), _critique(2, "pass"), _critique(3, "fail", "fail"),
                 _critique(4, "fail", "error"), _critique(5, "fail", "tie"),
                 _critique(1, "tie", "pass", attempt=1, accepted=True)]
    rows, skipped = build_sft(tasks, critiques)
    assert [r.lineage["task_id"] for r in rows] == ["t0"]
    row = rows[0]
    assert row.source == "rewrite" and row.messages[-1].content == "right 4"
    assert row.messages[0].content == tasks["t0"].prompt
    assert row.lineage == {"task_id": "t0", "sample": 0, "attempt": 0, "round": 1, "model": "m",
                           "judge": "verifier", "mode": "self-critique"}
    assert sum(skipped.values()) == 6 and skipped["not a fail->pass fix (tie->pass)"] == 2

    pairs, _ = build_dpo(tasks, critiques + [_critique(3, rewrite="wrong 3")])
    assert len(pairs) == 1 and pairs[0].chosen == "right 4" and pairs[0].rejected == "wrong 0"
    assert [m.content for m in pairs[0].prompt] == [tasks["t0"].prompt] and pairs[0].lineage["judge"] == "verifier"

    dist, _ = build_sft(tasks, [_critique(0, mode="distillation")])
    assert dist[0].lineage["mode"] == "distillation"


def test_verified_samples_keep_passes_only():
    tasks = _tasks(3)
    gens = [Generation(id=f"t{i}", sample=s, model="m", output=f"{i}/{s}", finish_reason="stop")
            for i in range(3) for s in range(3)]
    gens[1] = gens[1].model_copy(update={"finish_reason": "length"})
    outcome = {0: "pass", 1: "pass", 2: "tie"}
    verdicts = [Verdict(id=g.id, sample=g.sample, judge="verifier",
                        verdict=outcome[g.sample] if g.id != "t2" else "fail") for g in gens]
    rows, skipped = build_sft_from_samples(tasks, gens, verdicts, round=0)
    assert [(r.lineage["task_id"], r.lineage["sample"]) for r in rows] == [("t0", 0), ("t1", 0), ("t1", 1)]
    assert all(r.source == "sample" and r.lineage["mode"] == "rejection-sampling" for r in rows)
    assert skipped["verdict tie"] == 2 and skipped["verdict fail"] == 3 and sum(skipped.values()) == 6
    capped, _ = build_sft_from_samples(tasks, gens, verdicts, max_per_task=1, seed=3)
    assert [r.lineage["task_id"] for r in capped] == ["t0", "t1"]
    with pytest.raises(HoneError, match="pass for 't0' sample 0 has no generation"):
        build_sft_from_samples(tasks, gens[1:], verdicts)
    verdicts[0].evidence = {"judged_sha256": text_sha256("an answer since replaced")}
    with pytest.raises(HoneError, match="'t0' sample 0 judged another answer"):
        build_sft_from_samples(tasks, gens, verdicts)
    verdicts[0].evidence = {"judged_sha256": text_sha256(gens[0].output)}
    assert len(build_sft_from_samples(tasks, gens, verdicts)[0]) == 3


def test_bootstrap_pairs_are_labelled():
    tasks = _tasks(3)
    tasks["t2"] = Task(id="t2", kind="open", prompt="Say hi.")
    verdicts = [Verdict(id="t0", judge="v", verdict="fail"), Verdict(id="t0", sample=1, judge="v", verdict="fail"),
                Verdict(id="t1", judge="v", verdict="pass"), Verdict(id="t2", judge="v", verdict="fail")]
    rows, skipped = build_bootstrap(tasks, verdicts, round=1)
    assert [(r.source, r.lineage["direction"]) for r in rows] == [("forward", "forward"), ("reverse", "reverse")]
    forward, reverse = rows
    assert forward.messages[-1].content == "4" and forward.messages[0].content == tasks["t0"].prompt
    assert "4" in reverse.messages[0].content and reverse.messages[-1].content == tasks["t0"].prompt
    assert skipped["failed item without a reference"] == 1


def _row(i, text, task_id=None):
    return SFTExample(id=f"r{i}", source="sample", lineage={"task_id": task_id or f"train-{i}"},
                      messages=[Message(role="user", content=text), Message(role="assistant", content="ok")])


def test_decontamination_drops_and_reports_overlaps(shared_data):
    gsm = import_tasks(shared_data / "gsm8k_test_part1.jsonl", "gsm8k", limit=30)
    bench = {"gsm8k": gsm[:20], "arith": [Task(id="held-7", kind="math", prompt="What is 12 + 34?", reference="46")]}
    index = OverlapIndex(bench, n=13)
    words = gsm[5].prompt.split()
    rows = [
        _row(0, "Please solve: " + " ".join(words[3:20]) + " thanks"),  # a 17-word slice of a held-out question
        _row(1, gsm[25].prompt),                                          # a question outside the suite
        _row(2, "what is 12+34 ?"),                                       # the short held-out item, respaced
        _row(3, "What is 12 + 35?"),
        _row(4, "anything", task_id=gsm[0].id),                           # a held-out id
        _row(5, "Solve " + " ".join(words[3:14])),                        # only 11 words: under the n-gram
    ]
    kept, dropped = decontaminate(rows, index)
    assert [r.id for r in kept] == ["r1", "r3", "r5"]
    assert dropped == {"r0": {"suite": "gsm8k", "bench_id": gsm[5].id},
                       "r2": {"suite": "arith", "bench_id": "held-7"},
                       "r4": {"suite": "gsm8k", "bench_id": gsm[0].id}}
    pair = PreferencePair(id="p", prompt=[Message(role="user", content="q")], chosen="What is 12 + 34?",
                          rejected="x")
    assert decontaminate([pair], index)[1] == {"p": {"suite": "arith", "bench_id": "held-7"}}


def test_shared_instructions_are_not_contamination(shared_data):
    """Every HumanEval prompt starts with the same instruction; a training task in the same format is not a leak."""
    code = import_tasks(shared_data / "humaneval_part1.jsonl", "humaneval", limit=14)
    system = "You are a careful assistant who always explains each step before answering the question asked."
    bench = [t.model_copy(update={"prompt": None, "messages": [Message(role="system", content=system),
                                                               Message(role="user", content=t.prompt)]})
             for t in code[:10]]
    index = OverlapIndex({"humaneval": bench})
    rows = [_row(0, code[12].prompt), _row(1, system), _row(2, code[3].prompt)]
    kept, dropped = decontaminate(rows, index)
    assert [r.id for r in kept] == ["r0", "r1"] and dropped == {"r2": {"suite": "humaneval", "bench_id": code[3].id}}


def test_dedup_and_replay_share_are_seeded():
    rows = [_row(i, f"question {i}") for i in range(30)] + [_row(99, "question 3")]
    kept, dups = dedup(rows)
    assert len(kept) == 30 and dups == ["r99"]
    replay = [SFTExample(id=f"orig{i}", source="seed", messages=[Message(role="user", content=f"old {i}"),
                                                                 Message(role="assistant", content="a")])
              for i in range(40)] + [_row(7, "question 7")]
    a, report = mix(rows, replay=replay, replay_share=0.25, seed=1)
    b, _ = mix(rows, replay=replay, replay_share=0.25, seed=1)
    c, _ = mix(rows, replay=replay, replay_share=0.25, seed=2)
    assert a == b and a != c
    assert report.replay_wanted == 10 and report.replay_added == 10 and report.final == 40 == len(a)
    replayed = [r for r in a if r.source == "replay"]
    assert len(replayed) == 10 and all(r.lineage["replay_of"].startswith("orig") for r in replayed)
    assert all(r.lineage["original_source"] == "seed" for r in replayed)
    short, report = mix(rows, replay=replay[:4], replay_share=0.5, seed=0)
    assert report.replay_wanted == 30 and report.replay_added == 4
    with pytest.raises(HoneError, match="replay share must be in"):
        mix(rows, replay=replay, replay_share=1.0)


def test_run_data_and_cli(tmp_path):
    tasks = _tasks(8)
    held_out = {f"t{i}": tasks.pop(f"t{i}") for i in (6, 7)}
    write_records(tmp_path / "tasks.jsonl", list(tasks.values()) + list(held_out.values()))
    write_records(tmp_path / "bench.jsonl", list(held_out.values()))
    critiques = [_critique(i) for i in range(8)] + [_critique(0, attempt=1)] + [_critique(1, "tie")]
    write_records(tmp_path / "c.jsonl", critiques)
    write_records(tmp_path / "replay.jsonl", [_row(i, f"old question {i}") for i in range(20)])
    out = tmp_path / "sft.jsonl"
    config = DataStageConfig(kind="sft", replay_share=0.5)
    result = run_data(config, tmp_path / "tasks.jsonl", out, critiques_path=tmp_path / "c.jsonl",
                      bench_paths=[tmp_path / "bench.jsonl"], replay_path=tmp_path / "replay.jsonl")
    rows = read_records(out, SFTExample)
    assert rows == result.rows and not result.skipped
    trained = {r.lineage.get("task_id") for r in rows}
    assert trained.isdisjoint(held_out) and {"t0", "t5"} <= trained
    assert not any(q.prompt in m.content for r in rows for m in r.messages for q in held_out.values())
    assert result.report.duplicates == 1 and result.report.contaminated == 2
    assert result.report.sources == {"rewrite": 6, "replay": 6}
    again = run_data(config, tmp_path / "tasks.jsonl", out, critiques_path=tmp_path / "c.jsonl",
                     bench_paths=[tmp_path / "bench.jsonl"], replay_path=tmp_path / "replay.jsonl")
    assert again.skipped and again.rows == rows and again.report == result.report

    r = subprocess.run([*HONE, "data", "dpo", "--tasks", str(tmp_path / "tasks.jsonl"), "--critiques",
                        str(tmp_path / "c.jsonl"), "--bench-suite", str(tmp_path / "bench.jsonl"),
                        "-o", str(tmp_path / "dpo.jsonl")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "6 pairs" in r.stdout and "2 dropped for benchmark overlap" in r.stdout and "t6" in r.stdout
    assert len(read_records(tmp_path / "dpo.jsonl", PreferencePair)) == 6

    bad = [(["data", "sft", "--tasks", str(tmp_path / "tasks.jsonl"), "-o", str(tmp_path / "x.jsonl")],
            "give --critiques"),
           (["data", "sft", "--tasks", str(tmp_path / "tasks.jsonl"), "--critiques", str(tmp_path / "c.jsonl"),
             "--replay-share", "0.3", "-o", str(tmp_path / "x.jsonl")], "needs a replay file"),
           (["data", "bootstrap", "--tasks", str(tmp_path / "tasks.jsonl"), "--verdicts",
             str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "x.jsonl")], "no such file")]
    for args, message in bad:
        r = subprocess.run([*HONE, *args], capture_output=True, text=True)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.jsonl").exists()
