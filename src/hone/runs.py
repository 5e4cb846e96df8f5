"""Run directories and stage manifests: what each stage read, with which config, and what it wrote.

A stage whose manifest shows the same inputs (by content hash) and the same config is skipped. A stage that
was killed has a manifest with status "running" and is run again; its item-level resume comes from the
`.partial` files of `hone.records.PartialJsonl`. The inputs' hashes and the config are the stage's fingerprint:
a re-run with another fingerprint never appends to (or silently replaces) what the first one made.
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
from hone.errors import HoneError
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


def read_manifest(output: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of the stage that writes `output` (None: none yet, or being replaced this very moment)."""
    try:
        return json.loads(manifest_for(output).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def differences(then: dict[str, Any], now: dict[str, Any]) -> list[tuple[str, str, Any, Any]]:
    """Where two fingerprints (`{"config": ..., "inputs": {name: sha256}}`) differ: ("setting" or "input", name,
    then, now) for each, settings first (dotted; those both sides have before those only one has), then inputs; "<unset>" / None where one side lacks it. The one
    rule by which every stage (and training's checkpoints) tells a run of other inputs or settings from its own."""
    old, new = _flatten(then.get("config", {})), _flatten(now.get("config", {}))
    # a setting changed on both sides names the cause better than one that only appeared or disappeared
    keys = sorted(set(old) & set(new)) + sorted(set(old) ^ set(new))
    out = [("setting", k, old.get(k, "<unset>"), new.get(k, "<unset>")) for k in keys
           if old.get(k, "<unset>") != new.get(k, "<unset>")]
    a, b = then.get("inputs", {}), now.get("inputs", {})
    return out + [("input", k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def partial_for(output: str | os.PathLike) -> Path:
    out = Path(output)
    return out.with_name(out.name + ".partial")


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
        try:
            return json.loads(self.manifest_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def is_done(self) -> bool:
        """True when a finished manifest matches these inputs and config and its outputs still exist."""
        m = self.manifest()
        if not m or m.get("status") != "complete" or self.difference(m) is not None:
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

    def difference(self, manifest: dict[str, Any]) -> str | None:
        """The first input or setting in which `manifest` differs from this run, in words; None if none."""
        then = {k: v.get("sha256") for k, v in manifest.get("inputs", {}).items()}
        now = {k: v["sha256"] for k, v in self.input_hashes.items()}
        found = differences({"config": manifest.get("config", {}), "inputs": then},
                            {"config": self.config, "inputs": now})
        if not found:
            return None
        kind, key, old, new = found[0]
        if kind == "setting":
            return f"`{key}` was {_short(old)} then and is {_short(new)} now"
        if old is None or new is None:
            return f"input `{key}` was {'absent' if old is None else 'given'} then and is " \
                   f"{'absent' if new is None else 'given'} now"
        return f"input `{key}` has other content (sha256 {old[:12]} then, {new[:12]} now)"

    def start(self, outputs: list[str | os.PathLike] = (), *, restart: bool = False, overwrite: bool = False) -> None:
        """Mark the stage running, after refusing anything that would mix or silently replace other work.

        `outputs` are the files this stage writes (each may have a `.partial`). An output that is also an input
        is always refused. Records made by this stage with another fingerprint are kept unless `restart` (then
        they are discarded); an existing output this stage did not make is kept unless `overwrite`.
        """
        outs = [Path(o) for o in outputs]
        self._refuse_output_as_input(outs)
        present = [p for o in outs for p in (o, partial_for(o)) if p.exists() and p.stat().st_size]
        if present:
            m = self.manifest()
            if m is None or m.get("stage") != self.name:
                made_by = f"by `{m.get('stage')}`" if m else "without a Hone manifest"
                if not overwrite:
                    raise HoneError(f"{present[0]}: already exists and was made {made_by}, not by this "
                                    f"`{self.name}` stage; pass --overwrite to replace it")
                self._discard(outs)
            elif (why := self.difference(m)) is not None:
                if not (restart or overwrite):
                    raise HoneError(f"{present[0]}: made by an earlier run with other inputs or settings ({why}); "
                                    "pass --restart to discard it and start over")
                self._discard(outs)
        self._started = _now()
        self._write("running")

    def _refuse_output_as_input(self, outs: list[Path]) -> None:
        ins = {Path(str(p)).resolve() for p in self.inputs.values() if p is not None and os.path.exists(str(p))}
        for o in outs:
            if o.resolve() in ins or any(o.resolve().is_relative_to(i) for i in ins if i.is_dir()):
                raise HoneError(f"{o}: the output is also an input of this stage; choose another output path")

    @staticmethod
    def _discard(outs: list[Path]) -> None:
        for o in outs:
            partial_for(o).unlink(missing_ok=True)
            if o.is_file():
                o.unlink()

    def finish(self, outputs: dict[str, str | os.PathLike], counts: dict[str, Any] | None = None) -> None:
        self._write(
            "complete",
            finished=_now(),
            outputs={k: str(v) for k, v in outputs.items()},
            counts=counts or {},
        )
