"""The LLM judges against a real HTTP server on 127.0.0.1 speaking the Anthropic and OpenAI APIs, driven by the
official SDKs, with scripted faults: no item lost, no silent pass, retries honour retry-after, cache hits on
re-run, budget respected, batches matched by custom_id and resumed, pairwise order bias neutralised."""

from __future__ import annotations

import asyncio
import time

import pytest

from fake_llm_server import FakeLLM
from hone.judge import compare_all, judge_all, make_judge
from hone.records import Generation, Task, Verdict
from judge_support import FAST, SECRET, arithmetic, expected, fake  # noqa: F401 - `fake` is a fixture

FAULTS = {1: "429", 2: "500", 4: "529", 5: "slow", 7: "malformed", 8: "wrong-id", 10: "500*3", 14: "thinking"}
# Faults no retry can fix: the item must end as an explicit error, never as a pass.
BROKEN = {11: "400", 13: "malformed-always"}


def _check_fail_closed(verdicts, items, broken):
    assert [(v.id, v.sample) for v in verdicts] == [(g.id, g.sample) for _, g in items]  # none lost, in order
    for i, (v, want) in enumerate(zip(verdicts, expected(items))):
        assert v.verdict == ("error" if i in broken else want), (i, v)
        assert v.evidence["judged_sha256"]


@pytest.mark.parametrize("spec", ["anthropic:claude-haiku-5-5", "openai:judge-model@{url}/v1"])
def test_faults_end_as_verdicts_never_as_silent_passes(fake, tmp_path, spec):
    items = arithmetic(16, fault={**FAULTS, **BROKEN})
    judge = make_judge(spec.format(url=fake.url), cache_path=tmp_path / "c.sqlite", concurrency=4, **FAST)
    verdicts = judge_all(judge, items)
    _check_fail_closed(verdicts, items, BROKEN)
    assert verdicts[11].evidence["error_kind"] == "api" and "400" in verdicts[11].reason
    assert verdicts[13].evidence["error_kind"] == "invalid_reply"
    assert verdicts[7].evidence["asks"] == 2 and verdicts[8].evidence["asks"] == 2  # re-asked once, then valid
    assert fake.statuses[429] == 1 and fake.statuses[529] == 1 and fake.statuses[500] == 4
    assert fake.bad_auth == 0  # the key from the environment reached the server


def test_retry_waits_for_retry_after(fake, tmp_path):
    fake.retry_after = "0.4"
    items = arithmetic(1, fault={0: "429*2"})
    judge = make_judge("anthropic", cache_path=tmp_path / "c.sqlite", **FAST)
    assert judge_all(judge, items)[0].verdict == "pass"
    times = [r["t"] for r in fake.requests]
    assert len(times) == 3 and all(b - a >= 0.4 for a, b in zip(times, times[1:]))


def test_gives_up_after_max_attempts(fake, tmp_path):
    items = arithmetic(2, fault={0: "529*99"})
    judge = make_judge("anthropic", cache_path=tmp_path / "c.sqlite", max_attempts=3, **FAST)
    v = judge_all(judge, items)
    assert v[0].verdict == "error" and "gave up after 3 attempts" in v[0].reason and v[1].verdict == "pass"
    assert fake.statuses[529] == 3


def test_calls_run_concurrently(tmp_path, monkeypatch):
    with FakeLLM(key=SECRET, latency=0.1) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        items = arithmetic(32)
        judge = make_judge("anthropic", cache_path=tmp_path / "c.sqlite", concurrency=8, **FAST)
        t0 = time.monotonic()
        assert [v.verdict for v in judge_all(judge, items)] == expected(items)
        elapsed = time.monotonic() - t0
    assert server.max_inflight == 8
    assert elapsed < 32 * 0.1 / 2  # sequential would take 3.2 s (8 in flight: 0.4 s, plus 2 cores of SDK work)


def test_rerun_is_answered_from_the_cache(fake, tmp_path):
    items = arithmetic(12, fault={3: "malformed"})
    first = judge_all(make_judge("anthropic", cache_path=tmp_path / "c.sqlite", **FAST), items)
    paid = sum(fake.paid.values())
    assert paid == 13 and max(fake.paid.values()) == 1  # 12 items + one re-ask, each paid once
    judge = make_judge("anthropic", cache_path=tmp_path / "c.sqlite", **FAST)
    assert judge_all(judge, items) == first
    assert sum(fake.paid.values()) == paid and judge.stats["cached"] == 13 and judge.stats["calls"] == 0


def test_identical_prompts_in_flight_are_paid_once(fake, tmp_path):
    task, gen = arithmetic(1)[0]
    items = [(task, gen.model_copy(update={"sample": s})) for s in range(6)]  # same answer, six samples
    verdicts = judge_all(make_judge("anthropic", cache_path=tmp_path / "c.sqlite", **FAST), items)
    assert [v.sample for v in verdicts] == list(range(6)) and {v.verdict for v in verdicts} == {"pass"}
    assert sum(fake.paid.values()) == 1


def test_budget_is_never_exceeded_and_a_bigger_one_finishes(fake, tmp_path):
    items = arithmetic(30)
    cache = tmp_path / "c.sqlite"
    judge = make_judge("anthropic:claude-haiku-5-5", cache_path=cache, budget_usd=0.0008, concurrency=4, **FAST)
    verdicts = judge_all(judge, items)
    ledger = judge.cache.totals()
    assert 0 < ledger["usd"] <= 0.0008 and ledger["calls"] == sum(fake.paid.values())
    stopped = [v for v in verdicts if v.verdict == "error"]
    assert stopped and all(v.evidence["error_kind"] == "budget" and v.evidence["retryable"] for v in stopped)
    assert [v.verdict for v in verdicts if v.verdict != "error"] == [
        e for v, e in zip(verdicts, expected(items)) if v.verdict != "error"]
    more = make_judge("anthropic:claude-haiku-5-5", cache_path=cache, budget_usd=1.0, **FAST)
    assert [v.verdict for v in judge_all(more, items)] == expected(items)
    assert max(fake.paid.values()) == 1  # nothing answered under the first budget was paid again


def test_budget_needs_a_known_price(fake, tmp_path):
    from hone.errors import HoneError

    with pytest.raises(HoneError, match="no price for 'openai:mystery'"):
        make_judge(f"openai:mystery@{fake.url}/v1", cache_path=tmp_path / "c.sqlite", budget_usd=1.0)


def test_missing_key_is_a_clear_error(monkeypatch, tmp_path):
    from hone.errors import HoneError

    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path / "none"))
    with pytest.raises(HoneError, match="ANTHROPIC_API_KEY"):
        make_judge("anthropic", cache_path=tmp_path / "c.sqlite")


def _pairs(n: int) -> list[tuple[Task, Generation, Generation]]:
    """A is right on even items, B on items divisible by 3; both right or both wrong elsewhere."""
    out = []
    for t, g in arithmetic(n, wrong_every=10**6):
        ref = int(t.reference)
        a = g.model_copy(update={"output": f"The answer is {ref if int(t.id[4:]) % 2 == 0 else ref + 1}."})
        b = g.model_copy(update={"model": "ref", "output": f"I get {ref if int(t.id[4:]) % 3 == 0 else ref - 1}."})
        out.append((t, a, b))
    return out


def _want(i: int) -> str:
    a, b = i % 2 == 0, i % 3 == 0
    return "tie" if a == b else "win" if a else "loss"


def test_pairwise_runs_both_orders_and_reads_them_from_a_side(fake, tmp_path):
    pairs = _pairs(12)
    verdicts = compare_all(make_judge("anthropic", cache_path=tmp_path / "c.sqlite", **FAST), pairs)
    assert [v.verdict for v in verdicts] == [_want(i) for i in range(12)]
    assert all(v.evidence["consistent"] for v in verdicts) and sum(fake.paid.values()) == 24
    firsts = {r["body"]["messages"][0]["content"].split("<answer_a>")[1][:30] for r in fake.requests}
    assert any("The answer is" in f for f in firsts) and any("I get" in f for f in firsts)  # A shown first and second


def test_position_bias_becomes_order_inconsistent_ties(fake, tmp_path):
    fake.bias = "A"  # the "model" always prefers whatever is shown first
    verdicts = compare_all(make_judge("anthropic", cache_path=tmp_path / "c.sqlite", **FAST), _pairs(6))
    assert {v.verdict for v in verdicts} == {"tie"} and not any(v.evidence["consistent"] for v in verdicts)
    assert "order-inconsistent" in verdicts[1].reason


def test_pairwise_with_a_failing_order_is_an_error(fake, tmp_path):
    task, a, b = _pairs(1)[0]
    b = b.model_copy(update={"output": b.output + " [[fault:malformed-always]]"})
    v = compare_all(make_judge("anthropic", cache_path=tmp_path / "c.sqlite", **FAST), [(task, a, b)])[0]
    assert v.verdict == "error" and v.evidence["error_kind"] == "invalid_reply"


def test_batches_are_matched_by_custom_id_and_retried(fake, tmp_path):
    items = arithmetic(10, fault={2: "batch-missing", 5: "batch-errored", 7: "malformed"})
    judge = make_judge("anthropic", batch=True, cache_path=tmp_path / "c.sqlite", **FAST)
    verdicts = judge_all(judge, items)
    assert [v.verdict for v in verdicts] == expected(items)  # results come back reversed: order is not trusted
    assert judge.backend.unknown_results == 1  # the result for an id the batch never held was ignored
    assert fake.batch_creates == 2  # the missing, the errored and the re-ask went into a second batch
    assert max(fake.paid.values()) == 1
    rows = judge.cache.conn.execute("SELECT mode, COUNT(*) FROM ledger GROUP BY mode").fetchall()
    assert rows == [("batch", 11)]


def test_a_submitted_batch_is_resumed_not_paid_again(fake, tmp_path):
    fake.batch_seconds = 0.6
    items = arithmetic(8)
    cache = tmp_path / "c.sqlite"

    async def submit_then_die() -> None:
        judge = make_judge("anthropic", batch=True, cache_path=cache, **FAST)
        tasks = [asyncio.create_task(judge.grade(t, g)) for t, g in items]
        while fake.batch_creates == 0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        for task in tasks:  # the process "dies" while the batch is processing
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await judge.aclose()

    asyncio.run(submit_then_die())
    assert fake.batch_creates == 1 and not fake.paid
    judge = make_judge("anthropic", batch=True, cache_path=cache, **FAST)
    assert [v.verdict for v in judge_all(judge, items)] == expected(items)
    assert fake.batch_creates == 1 and sum(fake.paid.values()) == 8


def test_local_model_judge_fails_closed(tiny_model_dir, tmp_path):
    """A random tiny model cannot produce the JSON verdict: every item must be an error, none a pass."""
    items = arithmetic(3)
    judge = make_judge(f"local:{tiny_model_dir}", cache_path=tmp_path / "c.sqlite", max_tokens=16, **{
        k: v for k, v in FAST.items() if k != "max_tokens"})
    verdicts = judge_all(judge, items)
    assert [v.verdict for v in verdicts] == ["error"] * 3
    assert all(v.evidence["error_kind"] == "invalid_reply" for v in verdicts)
    assert judge.stats["calls"] == 6 and judge.cache.totals()["usd"] == 0  # asked, re-asked, free


def test_compare_all_for_bench_closes_and_reopens(fake, tmp_path):
    judge = make_judge("anthropic", cache_path=tmp_path / "c.sqlite", **FAST)
    assert judge.name == "anthropic:claude-haiku-5-5"
    pairs = _pairs(4)
    seen = []
    first = compare_all(judge, pairs[:2], on_result=seen.append)  # the bench judges one suite in one event loop ...
    second = compare_all(judge, pairs)                              # ... and the judge still works in the next one
    assert [v.verdict for v in second] == [_want(i) for i in range(4)] and second[:2] == first
    assert sorted(v.id for v in seen) == sorted(v.id for v in first)
    assert sum(fake.paid.values()) == 8


def test_a_comparison_answered_with_anything_but_win_tie_loss_is_an_error(tmp_path):
    class Grader:
        name, parallelism = "grader", 1

        async def compare(self, task, a, b):
            return Verdict(id=a.id, judge=self.name, verdict="pass")

        async def aclose(self):
            pass

    task, a, b = _pairs(1)[0]
    v = compare_all(Grader(), [(task, a, b)])[0]
    assert v.verdict == "error" and "the pairwise judge returned 'pass'" in v.reason
