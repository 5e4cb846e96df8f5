"""Safetensors at the byte level: headers, one tensor at a time, byte ranges copied between shards.

A LoRA merge changes tensor values, never names, shapes or dtypes, so a merged shard has the same header and
byte layout as its base shard. Copying the unchanged byte ranges (in the kernel where the file system allows)
and writing only the merged tensors keeps memory at one tensor and time near the copy's.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hone.errors import HoneError

INDEX_FILE = "model.safetensors.index.json"
_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
           "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}
_COPY_CHUNK = 64 << 20


@dataclass(frozen=True)
class TensorEntry:
    name: str
    file: Path
    dtype: str  # safetensors code: F32, BF16, ...
    shape: tuple[int, ...]
    start: int  # absolute byte offsets in `file`
    end: int

    @property
    def is_float(self) -> bool:
        return self.dtype in ("F64", "F32", "F16", "BF16")


def read_header(path: Path) -> dict[str, TensorEntry]:
    """Every tensor in one safetensors file, with absolute byte ranges; a clear error for a damaged file."""
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise ValueError("shorter than a header")
            (size,) = struct.unpack("<Q", raw)
            if size > 100 << 20:
                raise ValueError(f"header of {size} bytes")
            header = json.loads(f.read(size))
        file_size = path.stat().st_size
    except (OSError, ValueError) as e:
        raise HoneError(f"{path}: not a readable safetensors file ({e})") from None
    base = 8 + size
    entries = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        begin, end = meta["data_offsets"]
        if base + end > file_size:
            raise HoneError(f"{path}: tensor {name} runs past the end of the file (truncated download?)")
        entries[name] = TensorEntry(name, path, meta["dtype"], tuple(meta["shape"]), base + begin, base + end)
    return entries


def weight_index(model_dir: Path) -> tuple[list[Path], dict[str, TensorEntry]]:
    """The weight files of a model folder (per its index when sharded) and every tensor they hold."""
    index = model_dir / INDEX_FILE
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as e:
            raise HoneError(f"{index}: not a safetensors index ({e})") from None
        files = sorted({model_dir / f for f in weight_map.values()})
        missing = [f.name for f in files if not f.exists()]
        if missing:
            raise HoneError(f"{model_dir}: the index names shards that are missing: {', '.join(missing[:3])}")
    else:
        files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise HoneError(f"{model_dir}: no weights (*.safetensors) in the model folder")
    tensors: dict[str, TensorEntry] = {}
    for f in files:
        for name, entry in read_header(f).items():
            if name in tensors:
                raise HoneError(f"{model_dir}: tensor {name} appears in two shards ({tensors[name].file.name}, "
                                f"{f.name})")
            tensors[name] = entry
    return files, tensors


def torch_dtype_of(code: str):
    import torch

    if code not in _DTYPES:
        raise HoneError(f"unsupported safetensors dtype {code}")
    return getattr(torch, _DTYPES[code])


def read_tensor(entry: TensorEntry, fd: int | None = None):
    """One tensor, read from its byte range (positional reads: safe from several threads on one descriptor)."""
    import torch

    if fd is None:
        fd = os.open(entry.file, os.O_RDONLY)
        try:
            return read_tensor(entry, fd)
        finally:
            os.close(fd)
    buf = bytearray(entry.end - entry.start)
    view, done = memoryview(buf), 0
    while done < len(buf):
        n = os.preadv(fd, [view[done:]], entry.start + done)
        if n == 0:
            raise HoneError(f"{entry.file}: ended inside tensor {entry.name}")
        done += n
    if not buf:
        return torch.empty(entry.shape, dtype=torch_dtype_of(entry.dtype))
    return torch.frombuffer(buf, dtype=torch_dtype_of(entry.dtype)).reshape(entry.shape)


def write_tensor(fd: int, entry: TensorEntry, tensor: Any) -> None:
    """Write `tensor` (same dtype and shape as `entry`) at `entry`'s byte range (positional, thread-safe)."""
    import torch

    if tuple(tensor.shape) != entry.shape or tensor.dtype != torch_dtype_of(entry.dtype):
        raise HoneError(f"internal: {entry.name} would change shape or dtype")
    data = memoryview(tensor.contiguous().view(-1).view(torch.uint8).numpy())
    if data.nbytes != entry.end - entry.start:
        raise HoneError(f"internal: {entry.name} byte size mismatch")
    done = 0
    while done < data.nbytes:
        done += os.pwrite(fd, data[done:], entry.start + done)


def copy_range(fin: int, fout: int, start: int, end: int) -> None:
    """Copy bytes [start, end) of descriptor `fin` to the same offsets of `fout`: in the kernel where the file
    system allows (copy_file_range), else in 64 MiB chunks."""
    done = start
    if hasattr(os, "copy_file_range"):
        try:
            while done < end:
                n = os.copy_file_range(fin, fout, end - done, done, done)
                if n == 0:
                    break
                done += n
        except OSError:
            pass  # e.g. across file systems on old kernels: fall back to plain reads and writes
    while done < end:
        chunk = os.pread(fin, min(_COPY_CHUNK, end - done), done)
        if not chunk:
            raise HoneError(f"a shard ended early while copying (at byte {done})")
        written = 0
        while written < len(chunk):
            written += os.pwrite(fout, chunk[written:], done + written)
        done += len(chunk)
