import pytest

from hone.errors import HoneError
from hone.gate import decide


def _items(correct: int, n: int = 100) -> dict[str, bool]:
    return {f"q{i}": i < correct for i in range(n)}


def test_gate_refuses_a_regressed_suite_even_if_another_improved():
    before = {"math": _items(60), "code": _items(50)}
    after = {"math": _items(80), "code": _items(40)}
    d = decide(before, after, tolerance=0.02)
    assert not d["promoted"]
    assert "regressed on code -10.0 points" in d["reason"]
    assert d["suites"]["math"]["difference"] == pytest.approx(0.2)


def test_gate_tolerance_and_promotion():
    before = {"math": _items(60)}
    assert decide(before, {"math": _items(59)}, tolerance=0.02)["promoted"]
    assert not decide(before, {"math": _items(57)}, tolerance=0.02)["promoted"]
    up = decide(before, {"math": _items(75)}, tolerance=0.0)
    assert up["promoted"] and "math +15.0 points" in up["reason"]
    same = decide(before, {"math": _items(60)}, tolerance=0.0, require_gain=True)
    assert not same["promoted"] and "no suite improved" in same["reason"]


def test_gate_needs_the_same_items():
    with pytest.raises(HoneError, match="different items"):
        decide({"math": _items(5, 10)}, {"math": _items(5, 11)}, tolerance=0.0)
    with pytest.raises(HoneError, match="not benchmarked on suite 'code'"):
        decide({"code": _items(5, 10)}, {"math": _items(5, 10)}, tolerance=0.0)


def test_guard_suites_have_their_own_tolerance_and_never_count_as_the_gain():
    before = {"arith": _items(50), "mmlu": _items(30)}
    slipped = decide(before, {"arith": _items(60), "mmlu": _items(27)}, tolerance=0.0, trained={"arith"},
                     guard_tolerance=0.05)
    assert slipped["promoted"] and slipped["guards"] == {"suites": ["mmlu"], "tolerance": 0.05}
    fell = decide(before, {"arith": _items(60), "mmlu": _items(20)}, tolerance=0.0, trained={"arith"},
                  guard_tolerance=0.05)
    assert not fell["promoted"] and "regressed on guard suite mmlu -10.0 points (tolerance 5.0)" in fell["reason"]
    only_guard_up = decide(before, {"arith": _items(50), "mmlu": _items(40)}, tolerance=0.0, require_gain=True,
                           trained={"arith"})
    assert not only_guard_up["promoted"] and "no suite improved" in only_guard_up["reason"]


def test_a_model_that_stops_its_answers_less_often_is_not_promoted():
    from hone.bench.summary import stop_rate
    from hone.records import Generation

    def answers(stopped: int, n: int = 20) -> list[Generation]:
        return [Generation(id=f"q{i}", model="m", output="4", finish_reason="stop" if i < stopped else "length")
                for i in range(n)]

    loglik = [Generation(id="c", model="m", output="B", finish_reason="stop", params={"loglik": [-1.0, -0.5]})]
    assert stop_rate(answers(19)) == 0.95 and stop_rate(loglik) is None
    assert stop_rate([Generation(id="e", model="m", output="oom", finish_reason="error")]) is None
    before, after = {"arith": _items(50)}, {"arith": _items(70)}
    rates = ({"arith": stop_rate(answers(19)), "mmlu": None}, {"arith": stop_rate(answers(12)), "mmlu": None})
    d = decide(before, after, tolerance=0.0, stop_rates=rates, stop_tolerance=0.1)
    assert not d["promoted"] and "stops its answers less often: arith stop rate 95.0% -> 60.0%" in d["reason"]
    assert d["stop_rates"]["after"] == {"arith": 0.6, "mmlu": None}
    ok = decide(before, after, tolerance=0.0, stop_rates=(rates[0], {"arith": 0.9, "mmlu": None}),
                stop_tolerance=0.1)
    assert ok["promoted"]
