"""Remake the lm-eval sample logs in this folder: two tiny local models through lm-eval's `hf` model.

A is a random-init tiny Llama (seed 0); B is another (seed 1) after a few SFT steps on six of the GSM8K items
(four answered "The answer is #### N", two with the bare number, which only lm-eval's flexible-extract filter
reads). They share one tokenizer and chat template, so lm-eval asks both the same prompts; on MMLU they know
nothing and differ by chance, which is what a paired comparison must see through. The tasks are the
local YAMLs of benchmarks/vs_lm_eval.py (its `lm_eval_side` writes them and runs lm-eval), on the first items of
the shared GSM8K and MMLU data. Usage, from the checkout (lm-eval in its own venv, as that script's docstring says):

    PYTHONPATH=src .venv/bin/python tests/data/lm_eval/make_samples.py --lm-eval-python /tmp/lmeval-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
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
from hone.records import Task  # noqa: E402
from hone.train.config import TrainConfig  # noqa: E402
from hone.train.sft import run_train  # noqa: E402


def sft_on_answers(base: Path, gsm: list[Task], out: Path) -> Path:
    """Full fine-tuning on the answers of gsm[0:6] ("#### N" for the first four, "N" alone for the next two)."""
    data = out.parent / "sft.jsonl"
    with open(data, "w") as f:
        for n, t in enumerate(gsm[:6]):
            f.write(json.dumps({"prompt": t.prompt, "completion": f"The answer is #### {t.reference}" if n < 4
                                else str(t.reference)}) + "\n")
    config = TrainConfig(method="full", max_steps=120, per_device_batch_size=6, learning_rate=1e-3)
    return Path(run_train(config, data, base, out).folder)


def make_models(work: Path, gsm: list[Task]) -> dict[str, Path]:
    return {"tiny-seed0": build_tiny_model(work / "tiny-seed0", seed=0),
            "tiny-seed1-sft": sft_on_answers(build_tiny_model(work / "tiny-seed1", seed=1), gsm,
                                             work / "tiny-seed1-sft")}


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
    for name, model in make_models(work, gsm).items():
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
