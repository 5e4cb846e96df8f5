"""Escaping Word text for GitHub Markdown: only what would otherwise change meaning, so the text stays readable.

markdownify's own choices are too little (`<tag>` becomes raw HTML, `[1](x)` a link) or too much (`escape_misc`
writes `a \\+ b \\= c`). Line starts need their own rule: `1. Intro` or `# of items` typed as plain text in Word
must not turn into a list or a heading.
"""

from __future__ import annotations

import re

_ALWAYS = re.compile(r"([\\`*\[\]~|])")  # `|` too: literal table text in Word must stay text
_HTML_START = re.compile(r"<(?=[A-Za-z/!?])")
_ENTITY = re.compile(r"&(?=#?\w+;)")
_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")  # an underscore not inside a word (snake_case stays)
_LINE_START = re.compile(r"^(#{1,6}(?=\s|$)|>|[-+](?=\s|$)|-{2,}|={2,})")
_LINE_START_NUMBER = re.compile(r"^(\d{1,9})([.)])(?=\s|$)")


def escape_inline(text: str) -> str:
    """Escape characters that GitHub Markdown would read as markup anywhere in a line."""
    text = _ALWAYS.sub(r"\\\1", text)
    text = _UNDERSCORE.sub(r"\\_", text)
    text = _HTML_START.sub(r"\\<", text)
    return _ENTITY.sub(r"\\&", text)


def escape_line_start(text: str) -> str:
    """Escape what would open a heading, list, quote or rule in text that starts a line."""
    text = _LINE_START.sub(r"\\\1", text)
    return _LINE_START_NUMBER.sub(r"\1\\\2", text)
