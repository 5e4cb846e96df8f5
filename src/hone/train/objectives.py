"""`hone train` as plain functions: the objective's settings from a YAML file and flags, and one training run
with a typed result, so the command only parses arguments and prints."""

from __future__ import annotations

import importlib
import os
from typing import Any

from pydantic import ValidationError

from hone.errors import HoneError, dotted, option, problem
from hone.train.config import TrainConfig
from hone.train.result import TrainResult

# objective -> (its config class, its run function), as "module:name"
OBJECTIVES = {
    "sft": ("hone.train.config:TrainConfig", "hone.train.sft:run_train"),
    "dpo": ("hone.train.dpo:DPOTrainConfig", "hone.train.dpo:run_dpo"),
    "grpo": ("hone.train.config:GRPOTrainConfig", "hone.train.grpo:run_grpo"),
}
# Config keys whose flag is spelled otherwise.
_FLAGS = {"per_device_batch_size": "batch-size", "learning_rate": "lr", "gradient_accumulation_steps": "grad-accum"}


def _load(ref: str) -> Any:
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def _objective(objective: str) -> tuple[Any, Any]:
    if objective not in OBJECTIVES:
        raise HoneError(f"unknown objective {objective!r} (use {' or '.join(OBJECTIVES)})")
    config_ref, run_ref = OBJECTIVES[objective]
    return _load(config_ref), _load(run_ref)


def train_settings(objective: str, config_path: str | os.PathLike | None, flags: dict[str, Any]) -> TrainConfig:
    """The YAML file's settings (errors name its line and key), overridden by the flags that were given (errors
    name the flag)."""
    from hone.config import load_yaml, validate_config

    config_class, _ = _objective(objective)
    settings = load_yaml(config_path) if config_path else {}
    if config_path:
        validate_config(settings, config_class, config_path)
    try:
        return config_class.model_validate({**settings, **{k: v for k, v in flags.items() if v is not None}})
    except ValidationError as e:
        loc, msg = problem(e)
        flag = f"--{_FLAGS[dotted(loc)]}" if dotted(loc) in _FLAGS else option(loc)
        raise HoneError(f"{flag}: {msg}") from None


def train(objective: str, config: TrainConfig, data: str | os.PathLike, base: str | os.PathLike,
          out: str | os.PathLike, *, progress: Any = None) -> TrainResult:
    """Train (or skip an identical finished run, or resume a killed one) with the objective's stage function."""
    _, run = _objective(objective)
    return run(config, data, base, out, progress=progress)
