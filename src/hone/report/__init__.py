"""Markdown reports with matplotlib plots, rendered from the loop's `summary.json` (never from memory)."""
