"""`lineage.json` next to every trained adapter or model: exactly which base, data and settings made it.

Merging reads it to refuse a base the adapter was not trained on, and verification reads it to rebuild the
base as training saw it (full precision, or quantized with which settings).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

from hone.atomic import write_text_atomic
from hone.errors import HoneError

LINEAGE_FILE = "lineage.json"


def write_lineage(folder: str | os.PathLike, lineage: dict[str, Any]) -> Path:
    path = Path(folder) / LINEAGE_FILE
    body = {**lineage, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    write_text_atomic(path, json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")
    return path


def read_lineage(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The lineage of an adapter or model folder, or None when another tool made it."""
    path = Path(folder) / LINEAGE_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise HoneError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("base"), dict):
        raise HoneError(f"{path}: not a Hone lineage file (no `base` section)")
    return data


def base_origin(folder: str | os.PathLike) -> dict[str, Any] | None:
    """Where a base folder came from when Hone made it (a dequantized GGUF, a merge), kept in its adapters'
    lineage: an adapter trained on a dequantized GGUF says so, and so does every merge of it."""
    lineage = read_lineage(folder)
    if lineage is None:
        return None
    if lineage.get("kind") == "imported":
        return lineage["base"]
    return lineage["base"].get("origin")
