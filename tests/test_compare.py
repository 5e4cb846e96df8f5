"""`hone compare`: demo arms against the demo's own paired figures; real lm-eval sample logs (tests/data/lm_eval)."""

import json
import subprocess
import sys
from pathlib import Path

from scipy.stats import binomtest

LM_EVAL = Path(__file__).parent / "data" / "lm_eval"  # lm-eval 0.4.13's own logs of two tiny models; see README.md


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "hone.cli", "compare", *map(str, args)], capture_output=True,
                          text=True)


def test_demo_arms_compare_like_the_demo_summary(demo_run, tmp_path):
    expected = json.loads((demo_run / "summary.json").read_text())["verified_vs_control"]
    run = _cli(demo_run / "control", demo_run / "verified", "--json", "--html", tmp_path / "c.html")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    (suite,) = result["suites"].values()
    for key in ("n", "difference", "ci95", "mcnemar_p", "improved", "regressed", "both_correct", "both_wrong"):
        assert suite[key] == expected[key], key
    assert suite["a"]["accuracy"] == expected["before_accuracy"] and suite["prompts_checked"]
    assert result["a"].endswith(f"control:{expected['control_round']}")
    page = (tmp_path / "c.html").read_text()
    assert "Content-Security-Policy" in page and "McNemar" in page
    # The same rounds named as round folders, and the text form.
    text = _cli(demo_run / "control" / f"round-{expected['control_round']}",
                f"{demo_run / 'verified'}:{expected['verified_round']}")
    assert text.returncode == 0 and f"{100 * expected['difference']:+.1f} pts" in text.stdout
    # Different item sets are refused in one line.
    verdicts = demo_run / "control" / f"round-{expected['control_round']}" / "bench"
    suite_dir = next(p for p in verdicts.iterdir() if p.is_dir())
    fewer = tmp_path / "fewer.jsonl"
    fewer.write_text("".join((suite_dir / "verdicts.jsonl").read_text().splitlines(True)[:-1]))
    bad = _cli(suite_dir / "verdicts.jsonl", fewer)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "answered different items (1 only in" in bad.stderr
    # A whole demo run is two arms: the error says which two to compare.
    assert "compare two of them" in _cli(demo_run, demo_run / "verified").stderr


def _lm_eval_rows(folder):
    """Each suite's rows straight from lm-eval's files: {suite: {doc_id: row}}, a suite per task and filter."""
    suites = {}
    for f in folder.glob("samples_*.jsonl"):
        task = f.name.removeprefix("samples_").rsplit("_", 1)[0]
        rows = [json.loads(line) for line in f.read_text().splitlines()]
        filters = {r["filter"] for r in rows}
        for r in rows:
            suites.setdefault(task if len(filters) == 1 else f"{task}/{r['filter']}", {})[r["doc_id"]] = r
    return suites


def _right(row):
    (metric,) = row["metrics"]
    return float(row[metric]) == 1.0


def test_real_lm_eval_sample_logs_are_paired(tmp_path):
    a_dir, b_dir = LM_EVAL / "tiny-seed0", LM_EVAL / "tiny-seed1-sft"
    a_rows, b_rows = _lm_eval_rows(a_dir), _lm_eval_rows(b_dir)
    assert set(a_rows) == {"hone_gsm8k/strict-match", "hone_gsm8k/flexible-extract", "hone_mmlu"}

    run = _cli(a_dir, b_dir, "--json")
    assert run.returncode == 0, run.stderr
    suites = json.loads(run.stdout)["suites"]
    assert set(suites) == set(a_rows)
    for name, rows in a_rows.items():
        a = {i: _right(r) for i, r in rows.items()}
        b = {i: _right(r) for i, r in b_rows[name].items()}
        assert set(a) == set(b)
        improved = sorted(i for i in a if b[i] and not a[i])
        regressed = sorted(i for i in a if a[i] and not b[i])
        s = suites[name]
        assert (s["n"], s["improved"], s["regressed"]) == (len(a), len(improved), len(regressed)), name
        assert (s["a"]["correct"], s["b"]["correct"]) == (sum(a.values()), sum(b.values()))
        assert s["difference"] == (len(improved) - len(regressed)) / len(a)
        assert s["both_correct"] == sum(a[i] and b[i] for i in a) and s["prompts_checked"]
        assert s["metric"] == rows[0]["metrics"][0]
        discordant = len(improved) + len(regressed)
        assert s["mcnemar_p"] == (binomtest(len(improved), discordant).pvalue if discordant else 1.0)
        assert s["ci95"][0] <= s["difference"] <= s["ci95"][1]
        assert [int(e["id"]) for e in s["examples"]["improved"]] == improved[:len(s["examples"]["improved"])]
        assert [int(e["id"]) for e in s["examples"]["regressed"]] == regressed[:len(s["examples"]["regressed"])]

    # The files are not all zeros: B's SFT answers improve GSM8K, and more under flexible-extract (bare numbers)
    # than strict-match; the MMLU pair disagrees both ways. An MMLU example names the letter each model ranked
    # first, as lm-eval's `acc` read it.
    assert 0 < suites["hone_gsm8k/strict-match"]["improved"] < suites["hone_gsm8k/flexible-extract"]["improved"]
    mmlu = suites["hone_mmlu"]
    assert mmlu["improved"] and mmlu["regressed"]
    for ex in mmlu["examples"]["improved"] + mmlu["examples"]["regressed"]:
        for side, rows in (("a", a_rows), ("b", b_rows)):
            row = rows["hone_mmlu"][int(ex["id"])]
            scores = [float(r[0]) for r in row["filtered_resps"]]
            assert ex[side].startswith(row["doc"]["letters"][scores.index(max(scores))] + " "), (side, ex)

    # The text form prints the same paired figures; one file per side pairs like the folders.
    (mmlu_a,), (mmlu_b,) = a_dir.glob("samples_hone_mmlu_*.jsonl"), b_dir.glob("samples_hone_mmlu_*.jsonl")
    text = _cli(mmlu_a, mmlu_b)
    assert text.returncode == 0, text.stderr
    assert f"B − A: {100 * mmlu['difference']:+.1f} pts" in text.stdout
    assert f"improved {mmlu['improved']}, regressed {mmlu['regressed']} " in text.stdout

    # The same doc asked with another prompt (one item's context edited) is refused in one line.
    (gsm_b,) = b_dir.glob("samples_hone_gsm8k_*.jsonl")
    edited = tmp_path / "b" / gsm_b.name
    edited.parent.mkdir()
    rows = [json.loads(line) for line in gsm_b.read_text().splitlines()]
    for r in rows:
        if r["doc_id"] == 3:
            r["arguments"]["gen_args_0"]["arg_0"] += " Think step by step."
            r["prompt_hash"] = "0" * 64
    edited.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    bad = _cli(next(a_dir.glob("samples_hone_gsm8k_*.jsonl")), edited)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "1 items were asked with different prompts (e.g. 3)" in bad.stderr
