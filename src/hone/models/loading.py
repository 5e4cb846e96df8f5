"""Load and inspect a model folder: weights format, dtype, quantization, and a content hash of the weights.

Weights are loaded with safetensors only; `trust_remote_code` stays off unless the caller turns it on.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hone.chat import require_chat_template
from hone.config import read_json
from hone.errors import HoneError
from hone.hashing import file_sha256


@dataclass
class ModelInfo:
    path: Path
    architecture: str
    dtype: str
    quantization: dict[str, Any] | None
    weight_files: list[Path] = field(default_factory=list)

    @property
    def quantized(self) -> bool:
        return self.quantization is not None

    def describe_quantization(self) -> str:
        """'none', '4-bit (bitsandbytes nf4)', '8-bit (gptq)', ..."""
        q = self.quantization
        if not q:
            return "none"
        method = q.get("quant_method", "unknown")
        if q.get("load_in_4bit"):
            return f"4-bit ({method} {q.get('bnb_4bit_quant_type', '')})".replace(" )", ")")
        if q.get("load_in_8bit"):
            return f"8-bit ({method})"
        bits = q.get("bits")
        return f"{bits}-bit ({method})" if bits else f"quantized ({method})"


def inspect_model_dir(path: str | os.PathLike) -> ModelInfo:
    """Read config.json and list safetensors weights; a clear error for anything that is not a model folder."""
    p = Path(path)
    if not p.is_dir():
        raise HoneError(f"{p}: no such model folder")
    if not (p / "config.json").is_file():
        raise HoneError(f"{p}: not a model folder (no config.json)")
    cfg = read_json(p / "config.json")
    weights = sorted(p.glob("*.safetensors"))
    if not weights:
        if list(p.glob("*.bin")) or list(p.glob("*.pt")):
            raise HoneError(f"{p}: weights are pickled (.bin/.pt); Hone loads safetensors only — convert them first")
        raise HoneError(f"{p}: no weights (*.safetensors) in the model folder")
    from hone.preflight import weights_open

    weights_open(weights)
    archs = cfg.get("architectures") or [cfg.get("model_type", "unknown")]
    dtype = str(cfg.get("dtype") or cfg.get("torch_dtype") or "float32")
    return ModelInfo(
        path=p, architecture=archs[0], dtype=dtype, quantization=cfg.get("quantization_config"), weight_files=weights
    )


def weights_sha256(path: str | os.PathLike) -> str:
    """Content hash of a model's weights: the names and SHA-256 of its safetensors files, streamed."""
    info = inspect_model_dir(path)
    h = hashlib.sha256()
    for w in info.weight_files:
        h.update(w.name.encode() + b"\0" + file_sha256(w).encode() + b"\n")
    return h.hexdigest()


def load_tokenizer(path: str | os.PathLike, trust_remote_code: bool = False, padding_side: str = "left"):
    from transformers import AutoTokenizer

    p = Path(path)
    if not p.is_dir():
        raise HoneError(f"{p}: no such model folder")
    try:
        tok = AutoTokenizer.from_pretrained(p, trust_remote_code=trust_remote_code, padding_side=padding_side)
    except (OSError, ValueError) as e:
        raise HoneError(f"{p}: cannot load the tokenizer ({str(e).splitlines()[0]})") from None
    require_chat_template(tok, str(p))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def torch_dtype(name: str):
    import torch

    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if name not in table:
        raise HoneError(f"unknown dtype {name!r} (use one of: {', '.join(sorted(table))})")
    return table[name]


def default_dtype(device: str) -> str:
    """bf16 where the hardware has it, fp32 on CPU."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bfloat16"
    return "float32"


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(path: str | os.PathLike, dtype: str | None = None, device: str | None = None,
               trust_remote_code: bool = False):
    """Load a causal LM from a folder of safetensors; report a quantized base as such."""
    from transformers import AutoModelForCausalLM

    info = inspect_model_dir(path)
    device = device or default_device()
    dtype = dtype or (default_dtype(device) if not info.quantized else None)
    kwargs: dict[str, Any] = {"use_safetensors": True, "trust_remote_code": trust_remote_code}
    if dtype:
        kwargs["dtype"] = torch_dtype(dtype)
    try:
        model = AutoModelForCausalLM.from_pretrained(info.path, **kwargs)
    except Exception as e:  # noqa: BLE001 - transformers and safetensors raise many types for a bad folder
        raise HoneError(f"{info.path}: cannot load the model ({str(e).splitlines()[0]})") from None
    model.to(device)
    model.eval()
    return model
