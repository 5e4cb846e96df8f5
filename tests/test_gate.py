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
