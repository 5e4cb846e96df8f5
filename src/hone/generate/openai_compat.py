"""Any OpenAI-compatible chat-completions server (vLLM, llama.cpp, Ollama) through the official `openai` SDK.

The server applies the model's chat template. The API key comes from the environment only.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Iterator, Sequence

from hone.generate.base import GenParams, Progress, Request
from hone.records import Generation


class OpenAIGenerator:
    def __init__(self, model: str, base_url: str, concurrency: int = 8, timeout: float = 120.0,
                 max_retries: int = 4, api_key_env: str = "OPENAI_API_KEY", name: str | None = None):
        from openai import OpenAI

        from hone.preflight import server_answers

        server_answers(base_url)  # a dead server is one line now, not an `error` record per item later
        self.name = name or f"openai:{model}@{base_url}"
        self.model = model
        self.concurrency = concurrency
        self.client = OpenAI(base_url=base_url, api_key=os.environ.get(api_key_env) or "not-needed",
                             timeout=timeout, max_retries=max_retries)

    def _one(self, req: Request, params: GenParams) -> Generation:
        t0 = time.perf_counter()
        kwargs = dict(model=self.model, messages=req.messages, max_tokens=params.max_new_tokens,
                      temperature=params.temperature, top_p=params.top_p)
        if not params.greedy:
            kwargs["seed"] = params.seed * 100003 + req.sample
        try:
            resp = self.client.chat.completions.create(**kwargs)
            choice = resp.choices[0]
            text = choice.message.content or ""
            finish = "length" if choice.finish_reason == "length" else "stop"
            tokens = resp.usage.completion_tokens if resp.usage else 0
        except Exception as e:  # noqa: BLE001 - every failure becomes an explicit error record
            text, finish, tokens = f"{type(e).__name__}: {str(e)[:300]}", "error", 0
        return Generation(id=req.id, sample=req.sample, model=self.name, output=text.strip(),
                          finish_reason=finish, retryable=finish == "error", tokens=tokens,
                          seconds=round(time.perf_counter() - t0, 4),
                          params=params.model_dump(exclude={"batch_size"}))

    def close(self) -> None:
        self.client.close()

    def generate(self, requests: Sequence[Request], params: GenParams,
                 progress: Progress | None = None) -> Iterator[Generation]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = [pool.submit(self._one, r, params) for r in requests]
            for f in as_completed(futures):
                if progress:
                    progress(1)
                yield f.result()


def open_engine(config: Any, model: str, log_path: Any = None) -> OpenAIGenerator:
    """The registry's entry (hone.generate.registry): a server somebody else runs, at `config.base_url`."""
    return OpenAIGenerator(config.served_model or model, config.base_url, concurrency=config.concurrency,
                           timeout=config.request_timeout)
