"""Multiple choice scored by log-likelihood, as lm-evaluation-harness scores MMLU: no sampling, no extraction.

For each choice task, the context is the task rendered through Hone's chat contract (the tokenizer's template,
ending with the assistant header), and each option's continuation is its letter ("A", "B", ...): the model
chooses the letter whose tokens it finds most likely. lm-eval puts the same letters after a plain-text
"Answer:" with a leading space; here the assistant turn starts right after the header, so no space.

`LoglikChoiceGenerator` wraps a loaded HF generator: choice tasks are scored, every other request is generated
as usual, so `hone bench --choice-scoring loglik` needs no other change downstream (the letter is graded by
the choice verifier, and the per-letter log-probabilities are kept in the Generation's params).
"""

from __future__ import annotations

import time
from typing import Any, Iterator, Sequence

from hone.chat import encode, render_prompt
from hone.errors import HoneError
from hone.generate.base import GenParams, Progress, Request
from hone.records import Generation, Task

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def continuation_ids(tokenizer: Any, context: list[int], prompt: str, text: str) -> list[int]:
    """The tokens of `text` as they follow `prompt`: from the joint tokenization when it extends the
    context's tokens (the usual case), else `text` tokenized alone (lm-eval's fallback)."""
    joint = encode(tokenizer, prompt + text)
    if joint[: len(context)] == context and len(joint) > len(context):
        return joint[len(context):]
    return encode(tokenizer, text)


def option_logprobs(model: Any, tokenizer: Any, messages: list[dict[str, str]], continuations: list[str],
                    ) -> list[float]:
    """Sum of log-probabilities of each continuation's tokens after the rendered prompt (the assistant's turn)."""
    import torch

    prompt = render_prompt(tokenizer, messages)
    context = encode(tokenizer, prompt)
    conts = [continuation_ids(tokenizer, context, prompt, text) for text in continuations]
    limit = getattr(model.config, "max_position_embeddings", None)
    width = len(context) + max(len(c) for c in conts)
    if limit and width > limit:
        raise HoneError(f"the prompt is {len(context)} tokens; with its answer it exceeds the model's context "
                        f"({limit} tokens)")
    device = next(model.parameters()).device
    if all(len(c) == 1 for c in conts):
        # The usual case (letters are single tokens): every option is read off one next-token distribution,
        # from one pass over the context that keeps only the last position's logits.
        with torch.no_grad():
            last = model(input_ids=torch.tensor([context], device=device), logits_to_keep=1).logits[0, -1]
        logp = torch.log_softmax(last.float(), dim=-1)
        return [float(logp[c[0]]) for c in conts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.full((len(conts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(conts), width), dtype=torch.long)
    for i, c in enumerate(conts):  # right padding: every row's context sits at the same positions
        row = context + c
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    with torch.no_grad():
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    out = []
    for i, c in enumerate(conts):
        positions = torch.arange(len(context) - 1, len(context) - 1 + len(c), device=logp.device)
        out.append(float(logp[i, positions, torch.tensor(c, device=logp.device)].sum()))
    return out


class LoglikChoiceGenerator:
    """Choice tasks by log-likelihood of each option letter; any other request by the wrapped generator."""

    def __init__(self, inner: Any, tasks: dict[str, Task]):
        self.inner = inner
        self.tasks = tasks
        self.name = f"{inner.name} (choice by log-likelihood)"

    def close(self) -> None:
        if hasattr(self.inner, "close"):
            self.inner.close()

    def generate(self, requests: Sequence[Request], params: GenParams,
                 progress: Progress | None = None) -> Iterator[Generation]:
        choice = [r for r in requests if getattr(self.tasks.get(r.id), "kind", None) == "choice"]
        other = [r for r in requests if getattr(self.tasks.get(r.id), "kind", None) != "choice"]
        for r in choice:
            t0 = time.perf_counter()
            options = self.tasks[r.id].options or []
            try:
                scores = option_logprobs(self.inner.model, self.inner.tokenizer, r.messages,
                                         list(LETTERS[: len(options)]))
            except HoneError as e:  # this item cannot be scored; the others still can
                yield Generation(id=r.id, sample=r.sample, model=self.inner.name, output=str(e),
                                 finish_reason="error", params={"loglik": None})
                if progress:
                    progress(1)
                continue
            best = max(range(len(options)), key=lambda i: scores[i])  # ties: the first, as lm-eval's argmax
            yield Generation(id=r.id, sample=r.sample, model=self.inner.name, output=LETTERS[best],
                             finish_reason="stop", tokens=0, seconds=round(time.perf_counter() - t0, 4),
                             params={"loglik": {LETTERS[i]: round(s, 4) for i, s in enumerate(scores)}})
            if progress:
                progress(1)
        if other:
            yield from self.inner.generate(other, params, progress)
