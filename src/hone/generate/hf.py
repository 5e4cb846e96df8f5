"""Hugging Face transformers backend: real batching with left padding, stop at EOS / end-of-turn."""

from __future__ import annotations

import time
import zlib
from typing import Any, Iterator, Sequence

from hone.chat import decode_answer, stop_token_ids
from hone.generate.base import GenParams, Progress, Request
from hone.generate.fit import fit_prompts
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

    def close(self) -> None:
        """Free the weights: the next stage may train on the same GPU."""
        import torch

        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def context_length(self) -> int | None:
        """The model's context window in tokens (None when its config does not say)."""
        n = getattr(self.model.config, "max_position_embeddings", None)
        return int(n) if n else None

    def generate(self, requests: Sequence[Request], params: GenParams,
                 progress: Progress | None = None) -> Iterator[Generation]:
        """Batched generation. A prompt that cannot fit the context is an `error` record (its batch goes on);
        a batch that runs out of memory is split in halves and retried, down to single items."""
        context = self.context_length()
        encoded, refused = fit_prompts(self.tokenizer, requests, context)
        for r, why in refused:
            yield self._error(r, params, why)
        if progress and refused:
            progress(len(refused))
        # Similar lengths in one batch waste less padding; order does not change any single answer.
        encoded.sort(key=lambda x: len(x[1]))
        for start in range(0, len(encoded), params.batch_size):
            batch = encoded[start : start + params.batch_size]
            yield from self._batch(batch, params, context)
            if progress:
                progress(len(batch))

    def _error(self, req: Request, params: GenParams, why: str, retryable: bool = False) -> Generation:
        return Generation(id=req.id, sample=req.sample, model=self.name, output=why, finish_reason="error",
                          retryable=retryable, params=params.model_dump(exclude={"batch_size"}))

    def _batch(self, batch: list, params: GenParams, context: int | None) -> Iterator[Generation]:
        import torch

        try:
            done = self._generate_batch(batch, params, context)
        except torch.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if len(batch) == 1:
                yield self._error(batch[0][0], params, f"out of memory on this item alone ({len(batch[0][1])} "
                                                       f"prompt tokens + up to {params.max_new_tokens} new)",
                                  retryable=True)
                return
            half = len(batch) // 2
            yield from self._batch(batch[:half], params, context)
            yield from self._batch(batch[half:], params, context)
            return
        yield from done

    def _generate_batch(self, batch: list, params: GenParams, context: int | None) -> list[Generation]:
        import torch

        tok = self.tokenizer
        stops = stop_token_ids(tok)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        device = next(self.model.parameters()).device
        width = max(len(ids) for _, ids in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (_, ids) in enumerate(batch):
            input_ids[i, width - len(ids) :] = torch.tensor(ids)
            attention[i, width - len(ids) :] = 1
        max_new = min(params.max_new_tokens, context - width) if context else params.max_new_tokens
        kwargs: dict[str, Any] = {"max_new_tokens": max_new, "eos_token_id": stops, "pad_token_id": pad}
        if params.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=None)
            # Seeded by the batch's content, so a resumed run samples the same batch the same way.
            keys = ",".join(f"{r.id}#{r.sample}" for r, _ in batch)
            torch.manual_seed(zlib.crc32(f"{params.seed}|{keys}".encode()))
        t0 = time.perf_counter()
        with torch.no_grad():
            out = self.model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device), **kwargs)
        seconds = (time.perf_counter() - t0) / len(batch)
        records = []
        for (req, _), ids in zip(batch, out[:, width:].tolist()):
            answer = decode_answer(tok, ids)
            records.append(Generation(
                id=req.id, sample=req.sample, model=self.name, output=answer.text,
                finish_reason="stop" if answer.stopped else "length", tokens=answer.tokens,
                seconds=round(seconds, 4), params=params.model_dump(exclude={"batch_size"})))
        return records


def open_engine(config: Any, model: str, log_path: Any = None) -> HFGenerator:
    """The registry's entry (hone.generate.registry): the model loaded in this process."""
    return HFGenerator.from_dir(model, dtype=config.dtype, device=config.device,
                                trust_remote_code=config.trust_remote_code)
