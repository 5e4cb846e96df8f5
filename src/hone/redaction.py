"""Keeping secrets (API keys) out of everything Hone stores or prints: verdicts, logs, reports, caches, manifests."""

from __future__ import annotations

import os

# Environment variables whose names contain one of these words hold secrets (API keys above all).
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")
_MIN_LENGTH = 8  # shorter values ("1", "true") would blank ordinary words


def strip_secrets(text: str) -> str:
    """`text` with the value of every secret-looking environment variable replaced by `[redacted]`."""
    for name, value in os.environ.items():
        if len(value) >= _MIN_LENGTH and any(w in name.upper() for w in _SECRET_WORDS) and value in text:
            text = text.replace(value, "[redacted]")
    return text
