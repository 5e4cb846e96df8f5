"""Trainer callbacks: a free-disk check before every checkpoint, and Hone's progress bar."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable

from transformers import TrainerCallback

from hone.errors import HoneError
from hone.stage_contract import ProgressFactory

def free_bytes(path: str | os.PathLike) -> int:
    """Free space on the file system holding `path` (its nearest existing parent)."""
    p = Path(path).resolve()
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


def require_free(folder: str | os.PathLike, needed: int, what: str) -> None:
    have = free_bytes(folder)
    if have < needed:
        raise HoneError(f"{folder}: not enough free disk for {what}: needs about {human(needed)}, "
                        f"{human(have)} free")


class DiskGuard(TrainerCallback):
    """Stop before a checkpoint that would not fit, so the last complete checkpoint stays the resume point."""

    def __init__(self, folder: Path, checkpoint_bytes: int):
        self.folder = folder
        self.checkpoint_bytes = checkpoint_bytes

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save and state.is_world_process_zero:
            from transformers.trainer_utils import get_last_checkpoint

            last = get_last_checkpoint(str(self.folder)) if self.folder.is_dir() else None
            kept = f"{Path(last).name} is intact; " if last else ""
            try:
                require_free(self.folder, self.checkpoint_bytes, f"the checkpoint at step {state.global_step}")
            except HoneError as e:
                raise HoneError(f"{e}; {kept}free some space and run the same command again to resume") from None
        return control


class ProgressBar(TrainerCallback):
    """Drives a Hone `progress_factory(todo, done)` with optimizer steps; shows the loss (online RL: the reward
    mean, the share of groups whose answers all scored the same, KL) and tokens/s as logged."""

    def __init__(self, factory: ProgressFactory):
        self.factory = factory
        self.advance: Callable[[int], None] | None = None
        self._tokens: tuple[float, float] | None = None  # (time, tokens seen) at the previous log

    def on_step_begin(self, args, state, control, **kwargs):
        # Not on_train_begin: a resumed run loads its step count only after that event.
        if self.advance is None and state.is_world_process_zero:
            self.advance = self.factory(state.max_steps - state.global_step, state.global_step)
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if self.advance:
            self.advance(1)
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        note = getattr(self.advance, "note", None)
        if note is None or not logs or "loss" not in logs:
            return control
        text = f"loss {logs['loss']:.4g}"
        if logs.get("reward") is not None:  # online RL (TRL's GRPO metrics)
            text = f"reward {logs['reward']:.3f}"
            if logs.get("frac_reward_zero_std") is not None:
                text += f", {100 * logs['frac_reward_zero_std']:.0f}% groups without variance"
            if logs.get("kl") is not None:
                text += f", KL {logs['kl']:.3g}"
        if "num_tokens" in logs:  # TRL counts the tokens trained on so far
            now = (time.monotonic(), float(logs["num_tokens"]))
            if self._tokens is not None and now[0] > self._tokens[0]:
                text += f", {(now[1] - self._tokens[1]) / (now[0] - self._tokens[0]):,.0f} tokens/s"
            self._tokens = now
        note(text)
        return control
