"""Remake the lm-eval sample logs in this folder: two tiny random-init models (seeds 0 and 1), lm-eval's `hf` model.

The two models share one tokenizer and chat template, so lm-eval asks both the same prompts; they know nothing,
so their answers differ only by chance, which is what a paired comparison must see through. The tasks are the
local YAMLs of benchmarks/vs_lm_eval.py (its `lm_eval_side` writes them and runs lm-eval), on the first items of
the shared GSM8K and MMLU data. Usage, from the checkout (lm-eval in its own venv, as that script's docstring says):

    PYTHONPATH=src .venv/bin/python tests/data/lm_eval/make_samples.py --lm-eval-python /tmp/lmeval-venv/bin/python
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from vs_lm_eval import DATA, lm_eval_side  # noqa: E402

from hone.importers import import_tasks  # noqa: E402
from hone.models.tiny import build_tiny_model  # noqa: E402

MODELS = {"tiny-seed0": 0, "tiny-seed1": 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lm-eval-python", required=True, help="python of the venv where lm-eval is installed")
    ap.add_argument("--gsm8k", type=int, default=8, help="first N GSM8K items")
    ap.add_argument("--mmlu", type=int, default=24, help="first N MMLU items")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    args = ap.parse_args()
    gsm = import_tasks(DATA / "gsm8k_test_part1.jsonl", "gsm8k", limit=args.gsm8k)
    mmlu = import_tasks(DATA / "mmlu_sample.jsonl", "mmlu", limit=args.mmlu)
    work = Path(tempfile.mkdtemp(prefix="hone-lm-eval-samples-"))
    for name, seed in MODELS.items():
        model = build_tiny_model(work / name, seed=seed)
        out = work / f"{name}-out"
        lm_eval_side(args.lm_eval_python, str(model), gsm, mmlu, out, args.max_new_tokens, batch_size=8)
        dest = HERE / name
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        for f in sorted((out / "lm_eval_out").rglob("samples_*.jsonl")):
            shutil.copy(f, dest / f.name)
            print(f"wrote {dest / f.name} ({f.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
