"""Which prompts fit a model's context: rendered through the chat contract and encoded once, or refused.

A prompt that cannot fit is the item's own `error` (never a crash of its batch), and a prompt far beyond the
context is refused before tokenizing it (a 50 MB line took minutes and gigabytes to tokenize).
"""

from __future__ import annotations

from typing import Any, Sequence

from hone.chat import encode, render_prompt
from hone.generate.base import Request

# No tokenizer makes tokens of more than this many characters on average: a longer prompt cannot fit.
CHARS_PER_TOKEN_BOUND = 64


def fit_prompts(tokenizer: Any, requests: Sequence[Request], context: int | None
                ) -> tuple[list[tuple[Request, list[int]]], list[tuple[Request, str]]]:
    """(requests with their token ids, requests that cannot fit with the reason)."""
    fitting, refused = [], []
    for r in requests:
        text = render_prompt(tokenizer, r.messages)
        if context and len(text) > CHARS_PER_TOKEN_BOUND * context:
            refused.append((r, f"the prompt is {len(text):,} characters, far beyond the model's context of "
                               f"{context:,} tokens"))
            continue
        ids = encode(tokenizer, text)
        if context and len(ids) >= context:
            refused.append((r, f"the prompt is {len(ids):,} tokens; the model's context is {context:,} tokens"))
            continue
        fitting.append((r, ids))
    return fitting, refused
