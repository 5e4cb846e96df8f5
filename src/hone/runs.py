"""Run directories and stage manifests: what each stage read, with which config, and what it wrote.

A stage whose manifest shows the same inputs (by content hash) and the same config is skipped. A stage that
was killed has a manifest with status "running" (or none) and is run again; its item-level resume comes from
the `.partial` files of `hone.records.PartialJsonl`.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
from pathlib import Path
from typing import Any

from hone.atomic import write_text_atomic
from hone.hashing import tree_sha256

_PACKAGES = ("hone", "torch", "transformers", "trl", "peft", "accelerate", "safetensors", "tokenizers",
             "math-verify", "anthropic", "openai")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _hash_inputs(inputs: dict[str, str | os.PathLike | None]) -> dict[str, dict[str, str]]:
    return {
        name: {"path": str(p), "sha256": tree_sha256(p)}
        for name, p in sorted(inputs.items())
        if p is not None
    }


def _canonical(config: Any) -> Any:
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def manifest_for(output: str | os.PathLike) -> Path:
    """Where a stage that writes `output` keeps its manifest: `<output>.manifest.json`."""
    out = Path(output)
    return out.with_name(out.name + ".manifest.json")


class Stage:
    """One stage's manifest (JSON) at `manifest_path`."""

    def __init__(self, manifest_path: str | os.PathLike, name: str, inputs: dict[str, Any], config: dict[str, Any]):
        self.manifest_path = Path(manifest_path)
        self.name = name
        self.inputs = inputs
        self.config = _canonical(config)
        self._input_hashes: dict[str, dict[str, str]] | None = None
        self._started: str | None = None

    @property
    def input_hashes(self) -> dict[str, dict[str, str]]:
        if self._input_hashes is None:
            self._input_hashes = _hash_inputs(self.inputs)
        return self._input_hashes

    def manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        try:
            return json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError:
            return None

    def is_done(self) -> bool:
        """True when a finished manifest matches these inputs and config and its outputs still exist."""
        m = self.manifest()
        if not m or m.get("status") != "complete":
            return False
        if m.get("config") != self.config:
            return False
        if {k: v["sha256"] for k, v in m.get("inputs", {}).items()} != {
            k: v["sha256"] for k, v in self.input_hashes.items()
        }:
            return False
        return all(Path(p).exists() for p in m.get("outputs", {}).values())

    def _write(self, status: str, **extra: Any) -> None:
        self.manifest_path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "stage": self.name,
            "status": status,
            "inputs": self.input_hashes,
            "config": self.config,
            "versions": package_versions(),
            "started": self._started,
            **extra,
        }
        write_text_atomic(self.manifest_path, json.dumps(body, indent=2, sort_keys=True) + "\n")

    def start(self) -> None:
        self._started = _now()
        self._write("running")

    def finish(self, outputs: dict[str, str | os.PathLike], counts: dict[str, Any] | None = None) -> None:
        self._write(
            "complete",
            finished=_now(),
            outputs={k: str(v) for k, v in outputs.items()},
            counts=counts or {},
        )
