"""Hugging Face transformers backend: real batching with left padding, stop at EOS / end-of-turn."""

from __future__ import annotations

import time
import zlib
from typing import Any, Iterator, Sequence

from hone.chat import cut_at_stop, encode, render_prompt, stop_token_ids
from hone.generate.base import GenParams, Progress, Request
from hone.records import Generation


class HFGenerator:
    def __init__(self, model: Any, tokenizer: Any, name: str):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name

    @classmethod
    def from_dir(cls, path: str, dtype: str | None = None, device: str | None = None,
                 trust_remote_code: bool = False) -> "HFGenerator":
        from hone.models.loading import load_model, load_tokenizer

        tok = load_tokenizer(path, trust_remote_code=trust_remote_code)
        model = load_model(path, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
        return cls(model, tok, name=str(path))

    def generate(self, requests: Sequence[Request], params: GenParams,
                 progress: Progress | None = None) -> Iterator[Generation]:
        import torch

        tok = self.tokenizer
        encoded = [(r, encode(tok, render_prompt(tok, r.messages))) for r in requests]
        # Similar lengths in one batch waste less padding; order does not change any single answer.
        encoded.sort(key=lambda x: len(x[1]))
        stops = stop_token_ids(tok)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        device = next(self.model.parameters()).device
        for start in range(0, len(encoded), params.batch_size):
            batch = encoded[start : start + params.batch_size]
            width = max(len(ids) for _, ids in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for i, (_, ids) in enumerate(batch):
                input_ids[i, width - len(ids) :] = torch.tensor(ids)
                attention[i, width - len(ids) :] = 1
            kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "eos_token_id": stops,
                                      "pad_token_id": pad}
            if params.greedy:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            else:
                kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=None)
                # Seeded by the batch's content, so a resumed run samples the same batch the same way.
                keys = ",".join(f"{r.id}#{r.sample}" for r, _ in batch)
                torch.manual_seed(zlib.crc32(f"{params.seed}|{keys}".encode()))
            t0 = time.perf_counter()
            with torch.no_grad():
                out = self.model.generate(
                    input_ids=input_ids.to(device), attention_mask=attention.to(device), **kwargs
                )
            seconds = (time.perf_counter() - t0) / len(batch)
            new = out[:, width:].tolist()
            for (req, _), ids in zip(batch, new):
                kept, stopped = cut_at_stop(tok, ids)
                yield Generation(
                    id=req.id,
                    sample=req.sample,
                    model=self.name,
                    output=tok.decode(kept, skip_special_tokens=True).strip(),
                    finish_reason="stop" if stopped else "length",
                    tokens=len(kept) + (1 if stopped else 0),
                    seconds=round(seconds, 4),
                    params=params.model_dump(exclude={"batch_size"}),
                )
            if progress:
                progress(len(batch))
