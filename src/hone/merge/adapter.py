"""A PEFT LoRA adapter read as plain tensors: which base weight each module changes, and by how much.

Only what can be merged exactly is accepted: LoRA on linear layers (`lora_A`/`lora_B`, any rank/alpha pattern,
rsLoRA, fan-in-fan-out) and `modules_to_save` copies. Anything else (DoRA, LoRA bias, embedding or conv LoRA,
layer replication, other PEFT methods) is refused by name rather than merged wrongly.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hone.errors import HoneError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_PREFIX = "base_model.model."
# Config switches that change the merge arithmetic in ways Hone does not implement.
_UNSUPPORTED = ("use_dora", "lora_bias", "layer_replication", "target_parameters", "trainable_token_indices",
                "use_qalora", "use_bdlora", "alora_invocation_tokens")


@dataclass
class LoraModule:
    module: str  # e.g. model.layers.0.self_attn.q_proj
    a: Any  # (r, in), float32
    b: Any  # (out, r), float32
    scale: float
    fan_in_fan_out: bool

    @property
    def target(self) -> str:
        """The base checkpoint tensor this module changes."""
        return f"{self.module}.weight"

    @property
    def shape(self) -> tuple[int, int]:
        out, inp = self.b.shape[0], self.a.shape[1]
        return (inp, out) if self.fan_in_fan_out else (out, inp)

    def add_to(self, weight, rows: slice = slice(None)):
        """weight += scale * B @ A, in place on a float32 weight, or on the block `rows` of its rows."""
        if self.fan_in_fan_out:
            return weight.addmm_(self.a.T[rows], self.b.T, alpha=self.scale)
        return weight.addmm_(self.b[rows], self.a, alpha=self.scale)


@dataclass
class Adapter:
    path: Path
    config: dict[str, Any]
    modules: dict[str, LoraModule] = field(default_factory=dict)  # by target tensor name
    replacements: dict[str, Any] = field(default_factory=dict)  # modules_to_save: target tensor name -> tensor


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / ADAPTER_CONFIG
    if not folder.is_dir():
        raise HoneError(f"{folder}: no such adapter folder")
    if not path.is_file():
        hint = " (it looks like a full model: there is nothing to merge)" if (folder / "config.json").exists() else ""
        raise HoneError(f"{folder}: not a PEFT adapter (no {ADAPTER_CONFIG}){hint}")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise HoneError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if cfg.get("peft_type") != "LORA":
        raise HoneError(f"{path}: peft_type {cfg.get('peft_type')!r} is not LoRA; Hone merges LoRA adapters only")
    for key in _UNSUPPORTED:
        if cfg.get(key):
            raise HoneError(f"{path}: `{key}` is set; Hone cannot merge such an adapter exactly")
    for key in ("r", "lora_alpha"):
        if not isinstance(cfg.get(key), (int, float)) or cfg[key] <= 0:
            raise HoneError(f"{path}: `{key}` must be a positive number, got {cfg.get(key)!r}")
    return cfg


def get_pattern_key(patterns: Any, module: str) -> str:
    """PEFT's rule for rank_pattern / alpha_pattern keys: a key matches a module name that ends with it."""
    for key in patterns:
        if re.match(rf"(.*\.)?({key})$", module):
            return key
    return module


def _scale(cfg: dict[str, Any], module: str, rank: int, where: str) -> float:
    r_key = get_pattern_key((cfg.get("rank_pattern") or {}).keys(), module)
    a_key = get_pattern_key((cfg.get("alpha_pattern") or {}).keys(), module)
    r = (cfg.get("rank_pattern") or {}).get(r_key, cfg["r"])
    alpha = (cfg.get("alpha_pattern") or {}).get(a_key, cfg["lora_alpha"])
    if r != rank:
        raise HoneError(f"{where}: {module} has rank {rank} in its weights but {r} in {ADAPTER_CONFIG}")
    return alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r


def load_adapter(folder: str | os.PathLike) -> Adapter:
    """Read and check an adapter folder; every tensor must be understood, or it is an error."""
    import torch
    from safetensors import safe_open

    p = Path(folder)
    cfg = _read_config(p)
    weights = p / ADAPTER_WEIGHTS
    if not weights.is_file():
        pickled = (p / "adapter_model.bin").exists()
        raise HoneError(f"{p}: no {ADAPTER_WEIGHTS}" + ("; the adapter is pickled (.bin), and Hone loads safetensors "
                                                        "only — convert it first" if pickled else ""))
    save_modules = set(cfg.get("modules_to_save") or [])
    pairs: dict[str, dict[str, Any]] = {}
    adapter = Adapter(path=p, config=cfg)
    try:
        handle = safe_open(str(weights), framework="pt")
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for a damaged file
        raise HoneError(f"{weights}: not a readable safetensors file ({e})") from None
    with handle:
        for key in handle.keys():
            name = key[len(_PREFIX):] if key.startswith(_PREFIX) else key
            parts = name.split(".")
            if len(parts) >= 3 and parts[-2] in ("lora_A", "lora_B") and parts[-1] == "weight":
                module = ".".join(parts[:-2])
                pairs.setdefault(module, {})[parts[-2]] = handle.get_tensor(key)
            elif len(parts) >= 2 and any(m in parts[:-1] for m in save_modules):
                adapter.replacements[name] = handle.get_tensor(key)
            else:
                raise HoneError(f"{weights}: tensor {key} is not a LoRA A/B matrix or a modules_to_save copy; "
                                "Hone cannot merge this kind of adapter exactly")
    for module, ab in sorted(pairs.items()):
        if set(ab) != {"lora_A", "lora_B"}:
            missing = ({"lora_A", "lora_B"} - set(ab)).pop()
            raise HoneError(f"{weights}: {module} has no {missing} matrix")
        a, b = ab["lora_A"].to(torch.float32), ab["lora_B"].to(torch.float32)
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1]:
            raise HoneError(f"{weights}: {module}: lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)} do not "
                            "form a linear LoRA pair (embedding or conv LoRA is not supported)")
        scale = _scale(cfg, module, a.shape[0], str(weights))
        m = LoraModule(module, a, b, scale, bool(cfg.get("fan_in_fan_out")))
        adapter.modules[m.target] = m
    if not adapter.modules and not adapter.replacements:
        raise HoneError(f"{weights}: the adapter holds no LoRA weights")
    return adapter
