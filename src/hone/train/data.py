"""Training rows: SFTExample / `messages` JSONL or prompt/completion JSONL, tokenized through the chat contract.

Every row is rendered by `hone.chat.encode_training`: the tokenizer's own template, EOS at the end, and labels
only on the final assistant answer (prompt tokens are -100). Handing TRL finished `labels` means its own
masking rules (which differ between dataset formats and versions) cannot change what the loss sees.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from hone.chat import encode_training
from hone.errors import HoneError, dotted, problem
from hone.records import Message, iter_jsonl

_MESSAGES = TypeAdapter(list[Message])


def _messages(value: Any, where: str, key: str) -> list[dict[str, str]]:
    try:
        return [m.model_dump() for m in _MESSAGES.validate_python(value)]
    except ValidationError as e:
        loc, msg = problem(e)
        raise HoneError(f"{where}: `{key}`{'.' + dotted(loc) if loc else ''}: {msg}") from None


def conversation(obj: dict[str, Any], where: str) -> list[dict[str, str]]:
    """One training conversation ending in the assistant answer the loss is computed on."""
    if "messages" in obj:
        msgs = _messages(obj["messages"], where, "messages")
    elif "prompt" in obj and "completion" in obj:
        prompt, completion = obj["prompt"], obj["completion"]
        msgs = ([{"role": "user", "content": prompt}] if isinstance(prompt, str)
                else _messages(prompt, where, "prompt"))
        msgs += ([{"role": "assistant", "content": completion}] if isinstance(completion, str)
                 else _messages(completion, where, "completion"))
    else:
        raise HoneError(f"{where}: a training row needs `messages`, or `prompt` and `completion` "
                        f"(keys: {', '.join(sorted(obj)) or 'none'})")
    if not msgs or msgs[-1]["role"] != "assistant":
        raise HoneError(f"{where}: the conversation must end with an assistant message (the answer to learn)")
    if len(msgs) < 2:
        raise HoneError(f"{where}: the conversation has no prompt before the assistant answer")
    return msgs


def read_conversations(path: str | os.PathLike) -> list[list[dict[str, str]]]:
    p = Path(path)
    rows = [conversation(obj, f"{p}:{n}") for n, obj in iter_jsonl(p)]
    if not rows:
        raise HoneError(f"{p}: no training rows (the file is empty)")
    return rows


def tokenize(tokenizer: Any, conversations: list[list[dict[str, str]]],
             max_length: int | None) -> tuple[list[dict[str, list[int]]], dict[str, int]]:
    """`input_ids` + `labels` rows, cut to `max_length`; rows left with no answer token are dropped and counted."""
    rows, dropped, truncated, tokens, answer_tokens = [], 0, 0, 0, 0
    for msgs in conversations:
        enc = encode_training(tokenizer, msgs)
        ids, mask = enc["input_ids"], enc["completion_mask"]
        if max_length is not None and len(ids) > max_length:
            ids, mask = ids[:max_length], mask[:max_length]
            truncated += 1
        labels = [t if m else -100 for t, m in zip(ids, mask)]
        n_answer = sum(mask)
        if n_answer == 0:
            dropped += 1
            continue
        rows.append({"input_ids": ids, "labels": labels})
        tokens += len(ids)
        answer_tokens += n_answer
    stats = {"examples": len(rows), "dropped": dropped, "truncated": truncated, "tokens": tokens,
             "answer_tokens": answer_tokens}
    return rows, stats
