"""`hone compare`: demo arms against the demo's own paired figures, and lm-eval sample logs in their real schema."""

import hashlib
import json
import subprocess
import sys

import pytest

from hone.bench.stats import paired_compare
from hone.compare import compare, load_side
from hone.errors import HoneError
from hone.importers import import_tasks


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


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _lm_eval_gsm8k_samples(docs, outputs, golds, prompt_suffix=""):
    """Rows as lm-eval 0.4.x `--log_samples` writes them for a generate_until task with two filters."""
    rows = []
    for doc_id, (doc, out, gold) in enumerate(zip(docs, outputs, golds)):
        context = doc["question"] + prompt_suffix
        gen_kwargs = {"until": ["<|im_end|>"], "do_sample": False, "max_gen_toks": 256}
        for flt, extracted in (("strict-match", out.split("#### ")[-1] if "#### " in out else "[invalid]"),
                               ("flexible-extract", out.split()[-1])):
            rows.append({"doc_id": doc_id, "doc": doc, "target": gold, "arguments": [[context, gen_kwargs]],
                         "resps": [[out]], "filtered_resps": [extracted], "filter": flt,
                         "metrics": ["exact_match"],
                         "doc_hash": _hash(json.dumps(doc, indent=2, ensure_ascii=False)),
                         "prompt_hash": _hash(context), "target_hash": _hash(gold),
                         "exact_match": float(extracted == gold)})
    return rows


def _lm_eval_mmlu_samples(tasks, picks):
    """A multiple_choice task: one log-likelihood request per option, `acc` per sample."""
    rows = []
    for doc_id, (t, pick) in enumerate(zip(tasks, picks)):
        letters = "ABCD"[: len(t.options)]
        doc = {"id": t.id, "prompt": t.prompt, "letters": list(letters), "answer": letters.index(t.reference)}
        scores = [-1.0 if letter == pick else -3.0 for letter in letters]
        rows.append({"doc_id": doc_id, "doc": doc, "target": doc["answer"],
                     "arguments": [[t.prompt, f" {letter}"] for letter in letters],
                     "resps": [[[s, False]] for s in scores], "filtered_resps": [[s, False] for s in scores],
                     "filter": "none", "metrics": ["acc"],
                     "doc_hash": _hash(json.dumps(doc, indent=2, ensure_ascii=False)),
                     "prompt_hash": _hash(t.prompt), "target_hash": _hash(str(doc["answer"])),
                     "acc": float(pick == t.reference)})
    return rows


def _write(folder, task, rows, date="2026-12-06T02-00-00.000001"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"samples_{task}_{date}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def test_lm_eval_sample_logs_are_paired(shared_data, tmp_path):
    docs = [json.loads(line) for line in (shared_data / "gsm8k_test_part1.jsonl").read_text().splitlines()[:40]]
    golds = [d["answer"].split("#### ")[-1] for d in docs]
    a_right = [i % 3 == 0 for i in range(40)]
    b_right = [i % 3 == 0 or i % 4 == 1 for i in range(40)]
    b_right[0] = False  # one regression
    answer = lambda ok, gold: f"so the answer is #### {gold if ok else gold + '1'}"  # noqa: E731
    a = _write(tmp_path / "a", "hone_gsm8k", _lm_eval_gsm8k_samples(docs, [answer(r, g) for r, g in
                                                                           zip(a_right, golds)], golds))
    b = _write(tmp_path / "b", "hone_gsm8k", _lm_eval_gsm8k_samples(docs, [answer(r, g) for r, g in
                                                                           zip(b_right, golds)], golds))
    mmlu = import_tasks(shared_data / "mmlu_sample.jsonl", "mmlu", limit=30)
    _write(tmp_path / "a", "hone_mmlu", _lm_eval_mmlu_samples(mmlu, ["A"] * 30))
    _write(tmp_path / "b", "hone_mmlu", _lm_eval_mmlu_samples(mmlu, [t.reference for t in mmlu[:20]] + ["A"] * 10))

    result = compare(load_side(str(a)), load_side(str(b)))
    expected = paired_compare(dict(enumerate(a_right)), dict(enumerate(b_right)))
    for flt in ("strict-match", "flexible-extract"):
        s = result["suites"][f"hone_gsm8k/{flt}"]
        assert (s["n"], s["improved"], s["regressed"]) == (40, expected["improved"], expected["regressed"])
        assert s["difference"] == expected["difference"] and s["ci95"] == expected["ci95"]
        assert s["mcnemar_p"] == expected["mcnemar_p"] and s["metric"] == "exact_match" and s["prompts_checked"]
        assert s["examples"]["regressed"][0]["id"] == "0"

    folders = _cli(tmp_path / "a", tmp_path / "b", "--json")
    assert folders.returncode == 0, folders.stderr
    suites = json.loads(folders.stdout)["suites"]
    assert set(suites) == {"hone_gsm8k/strict-match", "hone_gsm8k/flexible-extract", "hone_mmlu"}
    a_acc = sum(t.reference == "A" for t in mmlu)
    assert suites["hone_mmlu"]["a"]["correct"] == a_acc and suites["hone_mmlu"]["b"]["correct"] == \
        20 + sum(t.reference == "A" for t in mmlu[20:])

    # The same doc asked with another prompt is not a paired comparison.
    c = _write(tmp_path / "c", "hone_gsm8k", _lm_eval_gsm8k_samples(docs, [answer(r, g) for r, g in
                                                                           zip(b_right, golds)], golds, " Think."))
    with pytest.raises(HoneError, match="40 items were asked with different prompts"):
        compare(load_side(str(a)), load_side(str(c)))
