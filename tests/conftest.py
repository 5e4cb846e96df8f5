"""Shared fixtures: the public data in ../shared/data and a tiny local model (no network, no hub)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Tiny models gain nothing from a second thread, and on a busy 2-core machine two OpenMP threads per
# process stall each other (10x slower measured here). Subprocesses the tests start inherit this too.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent


def _shared_data() -> Path:
    env = os.environ.get("HONE_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = _shared_data()
    if not (path / "gsm8k_test_part1.jsonl").exists():
        pytest.fail(f"public test data not found at {path} (set HONE_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random-init tiny Llama (0.6M parameters) with a local BPE tokenizer and a Llama-3-style template."""
    from hone.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from hone.models.loading import load_tokenizer

    return load_tokenizer(tiny_model_dir)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """A finished `hone demo --size small` run (about a minute), shared by the loop, status and report tests."""
    from hone.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    run_demo(out, seed=0, size_name="small", say=lambda m: None)
    return out


def must_isolate() -> bool:
    """As root (CI runs as root) or under CI, a machine without full isolation is a failure, never a skip."""
    return os.geteuid() == 0 or os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.fixture
def full_isolation():
    """The code sandbox's full isolation (tests/test_sandbox*.py): required as root or in CI, else a skip."""
    from hone.grade.sandbox import isolation

    iso = isolation()
    if not iso.full:
        why = f"needs full isolation (root with bwrap); this machine: {iso.describe()} {list(iso.notes)}"
        (pytest.fail if must_isolate() else pytest.skip)(why)
    return iso
