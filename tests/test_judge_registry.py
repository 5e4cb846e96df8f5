"""Judge backends by registry (issue 15): the spec parsed once into a JudgeSpec, a new backend as one module plus
one registry line, the cache as a layer around any backend, the batch backend's own store."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from hone.config import validate_config
from hone.errors import HoneError
from hone.judge import judge_all, make_judge
from hone.judge.base import Completion, JudgeRequest
from hone.judge.batch_store import BatchStore
from hone.judge.cache import CachingBackend, JudgeCache, cache_key
from hone.judge.registry import BACKENDS, BackendEntry
from hone.judge.spec import JudgeSpec
from hone.loop_config import LoopConfig
from judge_support import FAST, arithmetic, expected, fake  # noqa: F401 - `fake` is a fixture
from rule_judge_backend import RuleBackend


@pytest.mark.parametrize("text, verifiers, backend, arg, money, model_dir", [
    ("verifier", True, None, "", False, None),
    ("composite", True, "anthropic", "", True, None),
    ("composite:local:/m", True, "local", "/m", False, "/m"),
    ("anthropic:claude-haiku-5-5", False, "anthropic", "claude-haiku-5-5", True, None),
    ("openai:qwen@http://127.0.0.1:8000/v1", False, "openai", "qwen@http://127.0.0.1:8000/v1", True, None),
    ("local:/models/judge", False, "local", "/models/judge", False, "/models/judge"),
])
def test_the_spec_is_parsed_once_into_what_callers_read(text, verifiers, backend, arg, money, model_dir):
    spec = JudgeSpec.parse(text)
    assert (spec.text, spec.verifiers, spec.backend, spec.arg) == (text, verifiers, backend, arg)
    assert spec.costs_money is money and spec.model_dir == model_dir
    assert JudgeSpec.parse(spec) is spec  # a parsed spec passes through every caller unchanged


def test_an_unknown_judge_is_refused_in_one_line_naming_the_config_key(tmp_path):
    with pytest.raises(HoneError, match=r"--judge 'gpt-9': unknown judge \(use anthropic\[:MODEL\] \|"):
        JudgeSpec.parse("gpt-9")
    raw = {"base_model": "m", "train_tasks": "t.jsonl", "heldout": {"a": "a.jsonl"}, "judge": "composite:gpt-9"}
    with pytest.raises(HoneError, match=r"loop.yaml: key `judge`: .*'composite:gpt-9': unknown judge"):
        validate_config(raw, LoopConfig, tmp_path / "loop.yaml")


def test_a_new_backend_is_one_module_and_one_registry_line(monkeypatch, tmp_path):
    monkeypatch.setitem(BACKENDS, "rule", BackendEntry("rule_judge_backend", "rule[:NAME]", free=True))
    items = arithmetic(6)
    judge = make_judge("rule", cache_path=tmp_path / "c.sqlite")
    assert [v.verdict for v in judge_all(judge, items)] == expected(items)
    assert judge.name == "rule:exact" and judge.backend.calls == 6 and judge.cache.totals()["calls"] == 6
    again = make_judge("composite:rule", cache_path=tmp_path / "c.sqlite")  # composite finds it too
    again_llm = again.llm
    open_items = [(t.model_copy(update={"kind": "open"}), g) for t, g in items]  # the verifiers cannot decide
    assert [v.verdict for v in judge_all(again, open_items)] == expected(items)
    assert again_llm.backend.calls == 0 and again_llm.stats["cached"] == 6  # every answer from the cache layer
    assert not JudgeSpec.parse("rule").costs_money
    with pytest.raises(HoneError, match=r"--batch: only the anthropic judge has a batch API \(got 'rule'\)"):
        make_judge("rule", batch=True)


def test_the_cache_layer_wraps_any_backend_and_pays_each_prompt_once(tmp_path):
    inner = RuleBackend("exact", delay=0.05)
    stats: Counter[str] = Counter()
    cache = JudgeCache(tmp_path / "c.sqlite")
    layer = CachingBackend(inner, cache, lambda tin, tout: (tin + tout) / 1e6, stats)
    request = JudgeRequest("grade-v1", "", (("user", "Item id: t1\n<answer>\n1 is 1.\n</answer>"),), 64)

    async def main() -> list[Completion]:
        return await asyncio.gather(*(layer.complete(request) for _ in range(5)))

    answers = asyncio.run(main())  # five identical prompts in flight at once
    assert inner.calls == 1 and stats["cached"] == 4 and len({a.text for a in answers}) == 1
    assert cache.get(cache_key("rule:exact", request)) == answers[0]
    assert cache.totals()["calls"] == 1 and cache.totals()["usd"] == pytest.approx(
        (answers[0].input_tokens + answers[0].output_tokens) / 1e6)


def test_batch_results_read_before_a_kill_are_handed_over_once_by_the_next_process(tmp_path):
    path = tmp_path / "judge_cache.sqlite"
    JudgeCache(path)  # the cache and the batch store share the run's file, each with its own tables
    request = JudgeRequest("grade-v1", "", (("user", "q"),), 8)
    key = cache_key("anthropic:m", request)
    store = BatchStore(path)
    store.add_batch("b1", "m", {key: request})
    assert store.open_batches("m") == ["b1"] and store.in_open_batch(key) and store.requests("b1") == {key: request}
    store.add_result("b1", key, Completion("answer", 10, 2, "end_turn"))
    store.finish("b1")  # ... and the process is killed before the cache layer took the result
    later = BatchStore(path)
    assert later.open_batches("m") == [] and not later.in_open_batch(key)
    assert later.take_results("other-model") == []
    assert later.take_results("m") == [(request, Completion("answer", 10, 2, "end_turn"))]
    assert later.take_results("m") == [] and store.take_results("m") == []  # once, across connections


def test_a_batch_answer_read_before_a_kill_is_used_and_recorded_not_paid_again(fake, tmp_path):
    from hone.judge.prompts import grade_request

    cache = tmp_path / "judge_cache.sqlite"
    (task, gen), = arithmetic(1)
    request = grade_request(task, gen.output, FAST["max_tokens"])
    key = cache_key("anthropic:claude-haiku-5-5", request)
    store = BatchStore(cache)  # what a killed process left: a finished batch whose answer was never recorded
    store.add_batch("msgbatch_old", "claude-haiku-5-5", {key: request})
    reply = '{"id": "add-0", "verdict": "pass", "score": 1, "reason": "17 + 7 = 24... matches"}'
    store.add_result("msgbatch_old", key, Completion(reply, 100, 20, "end_turn"))
    store.finish("msgbatch_old")
    judge = make_judge("anthropic", batch=True, cache_path=cache, **FAST)
    assert [v.verdict for v in judge_all(judge, [(task, gen)])] == ["pass"]
    assert fake.batch_creates == 0 and not fake.paid  # answered from what the store kept
    rows = judge.cache.conn.execute("SELECT key, mode, input_tokens FROM ledger").fetchall()
    assert rows == [(key, "batch", 100)]  # on the ledger (and so in the budget) exactly once
    again = make_judge("anthropic", batch=True, cache_path=cache, **FAST)
    assert [v.verdict for v in judge_all(again, [(task, gen)])] == ["pass"] and again.stats["cached"] == 1
    assert judge.cache.totals()["calls"] == 1
