"""Failure clusters: failed items grouped by what they are about and how they failed, deterministically."""

import json
import subprocess
import sys

import pytest

from hone.errors import HoneError
from hone.grade.run import GradeConfig, run_grade
from hone.judge.clusters import cluster_failures
from hone.records import Generation, Task, write_records


def _graded_failures(tmp_path):
    """Math tasks of two kinds (percentages, train speeds) answered wrongly in two ways (a wrong number, a
    refusal without a number), graded by the real verifier."""
    tasks, gens = [], []
    for i in range(12):
        if i % 2:
            prompt = f"A shop sells a coat for {50 + i} dollars with a discount of {10 + i} percent. Price?"
        else:
            prompt = f"A train travels {100 + i} miles at {40 + i} miles per hour. How many hours?"
        tasks.append(Task(id=f"t{i}", kind="math", prompt=prompt, reference=str(1000 + i),
                          meta={"category": "shop" if i % 2 else "train"}))
        output = f"The answer is {i}." if i < 6 else "I am unable to work this out, sorry."
        gens.append(Generation(id=f"t{i}", model="m", output=output, finish_reason="stop"))
    write_records(tmp_path / "tasks.jsonl", tasks)
    write_records(tmp_path / "gens.jsonl", gens)
    run_grade(GradeConfig(), tmp_path / "tasks.jsonl", tmp_path / "gens.jsonl", tmp_path / "verdicts.jsonl")
    return tmp_path / "verdicts.jsonl"


def test_cli_clusters_failures_by_topic_and_by_way_of_failing(tmp_path):
    verdicts = _graded_failures(tmp_path)
    out = tmp_path / "failures.jsonl"
    cmd = [sys.executable, "-m", "hone.cli", "failures", "--verdicts", str(verdicts), "-o", str(out), "--cluster", "4"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    path = tmp_path / "failures.clusters.json"
    clusters = json.loads(path.read_text())
    assert clusters["items"] == 12 and sum(c["size"] for c in clusters["clusters"]) == 12
    groups = [set(c["ids"]) for c in clusters["clusters"]]
    # Every cluster holds one topic and one way of failing: the four (topic, failure) cells are never mixed.
    cell = {f"t{i}": (i % 2, i < 6) for i in range(12)}
    assert len(groups) == 4 and all(len({cell[i] for i in g}) == 1 for g in groups)
    terms = {t for c in clusters["clusters"] for t in c["top_terms"]}
    assert {"train", "discount", "unable"} <= terms
    assert all(c["examples"] and c["examples"][0]["prompt"] for c in clusters["clusters"])
    assert "4 clusters of 12 failures" in res.stdout

    first = path.read_text()
    path.unlink()
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    assert path.read_text() == first  # same failures, same seed: same clusters, byte for byte


def test_more_clusters_than_distinct_failures_and_bad_k():
    rows = [{"id": str(i), "prompt": "Add two numbers.", "output": "no", "reason": "wrong"} for i in range(5)]
    result = cluster_failures(rows, 3)
    assert result["k_used"] == 1 and result["clusters"][0]["size"] == 5
    assert cluster_failures([], 3)["clusters"] == []
    with pytest.raises(HoneError, match="at least 1"):
        cluster_failures(rows, 0)
