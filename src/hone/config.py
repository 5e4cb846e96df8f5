"""YAML configs validated by pydantic; every error names the file, the key and, where known, the line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from hone.errors import HoneError, dotted, problem

C = TypeVar("C", bound=BaseModel)


def read_json(path: str | os.PathLike, what: str = "file") -> dict:
    """A JSON object from disk; a missing file or bad JSON is one line naming the file (and line)."""
    p = Path(path)
    if not p.is_file():
        raise HoneError(f"{p}: no such {what}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise HoneError(f"{p}:{e.lineno}: invalid JSON ({e.msg})") from None


def load_yaml(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.is_file():
        raise HoneError(f"{p}: no such config file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark else str(p)
        raise HoneError(f"{where}: invalid YAML ({getattr(e, 'problem', None) or e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HoneError(f"{p}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def _key_line(path: Path, loc: tuple) -> int | None:
    """Best-effort line number of a (possibly nested) key in the YAML file."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == str(part):
                    line, node = k.start_mark.line + 1, v
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def validate_config(data: dict, model: type[C], path: str | os.PathLike) -> C:
    p = Path(path)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        loc, msg = problem(e)
        line = _key_line(p, loc) if p.is_file() else None
        where = f"{p}:{line}" if line else str(p)
        raise HoneError(f"{where}: key `{dotted(loc) or '(top level)'}`: {msg}") from None


def load_config(path: str | os.PathLike, model: type[C]) -> C:
    return validate_config(load_yaml(path), model, path)
