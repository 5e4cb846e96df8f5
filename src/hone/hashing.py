"""Content hashes of files and folders, streamed, so inputs can be compared without trusting names or dates."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from hone.errors import HoneError

_CHUNK = 8 * 1024 * 1024
_memo: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, read in 8 MiB chunks; memoised by (path, size, mtime) within a process."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        raise HoneError(f"{p}: cannot read ({e.strerror})") from None
    memo_key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if memo_key in _memo:
        return _memo[memo_key]
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    _memo[memo_key] = h.hexdigest()
    return _memo[memo_key]


def tree_sha256(path: str | os.PathLike, suffixes: tuple[str, ...] | None = None) -> str:
    """Hash of a folder: every file's relative name and content hash, in sorted order. A model card at the top
    (README.md, hone.report.model_card) is written about a model after it is benchmarked, so it is not content."""
    root = Path(path)
    if root.is_file():
        return file_sha256(root)
    if not root.is_dir():
        raise HoneError(f"{root}: no such file or folder")
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        if suffixes and not p.name.endswith(suffixes):
            continue
        rel = p.relative_to(root).as_posix()
        if "/." in f"/{rel}" or rel == "README.md":
            continue  # hidden files (partial writes, caches) and the model card are not content
        h.update(rel.encode() + b"\0" + file_sha256(p).encode() + b"\n")
    return h.hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
