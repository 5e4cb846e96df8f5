"""Judge model backends by name: a new backend is one module plus one line in `BACKENDS`.

Each backend lives in its own module, imported only when chosen (the `anthropic` SDK or a local model cost
nothing until asked for), and defines `open_backend(arg, context) -> LLMBackend`, where `arg` is what follows
`NAME:` in the judge spec. The module checks what it needs before any work (a key, a live server, a model
folder) and raises HoneError in one line otherwise.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

from hone.errors import HoneError
from hone.judge.base import LLMBackend
from hone.judge.config import JudgeConfig


@dataclass(frozen=True)
class BackendEntry:
    module: str  # defines open_backend(arg, context)
    usage: str  # how the spec is written, for error messages and --help
    batch: str | None = None  # module of the same model through a batch API (`--batch`), if it has one
    free: bool = False  # True: calls cost no money (no budget is needed)
    model_dir: bool = False  # True: `arg` is a model folder whose weights are an input of the judge stage


BACKENDS: dict[str, BackendEntry] = {
    "anthropic": BackendEntry("hone.judge.anthropic", "anthropic[:MODEL]", batch="hone.judge.anthropic_batch"),
    "openai": BackendEntry("hone.judge.openai_compat", "openai:MODEL@URL"),
    "local": BackendEntry("hone.judge.local", "local:DIR", free=True, model_dir=True),
}


@dataclass(frozen=True)
class BackendContext:
    """What every backend may use: the judge settings, and where state that must outlive the process goes (the
    run's judge SQLite file, or ":memory:")."""

    config: JudgeConfig
    store_path: str | os.PathLike


def entry(name: str) -> BackendEntry:
    try:
        return BACKENDS[name]
    except KeyError:
        raise HoneError(f"unknown judge backend {name!r} (known: {', '.join(BACKENDS)})") from None


def open_backend(name: str, arg: str, context: BackendContext, *, batch: bool = False) -> LLMBackend:
    """The backend `name` for `arg`; with `batch`, its batch-API variant (refused where there is none)."""
    e = entry(name)
    if batch and e.batch is None:
        shown = f"{name}:{arg}" if arg else name
        with_batch = ", ".join(n for n, b in BACKENDS.items() if b.batch)
        raise HoneError(f"--batch: only the {with_batch} judge has a batch API (got {shown!r})")
    module = importlib.import_module(e.batch if batch else e.module)
    return module.open_backend(arg, context)
