"""Any OpenAI-compatible chat-completions server (vLLM, llama.cpp, Ollama, OpenAI) through the `openai` SDK.

The key comes from OPENAI_API_KEY if set (local servers need none). Temperature defaults to 0 so a local
judge answers the same question the same way; the SDK's own retries are off (Hone's limiter retries).
"""

from __future__ import annotations

import os
import re

from hone.errors import HoneError
from hone.judge.base import Completion, JudgeRequest
from hone.judge.ratelimit import LoopLocal, sdk_call_error
from hone.judge.registry import BackendContext


def open_backend(arg: str, context: BackendContext) -> "OpenAIBackend":
    """`openai:MODEL@URL` (URL ends in /v1; without @URL, OPENAI_BASE_URL); the server must answer /v1/models."""
    from hone.preflight import server_answers

    m = re.fullmatch(r"(.+?)(?:@(https?://\S+))?", arg)
    url = (m.group(2) if m else None) or os.environ.get("OPENAI_BASE_URL")
    if not m or not url:
        shown = f"openai:{arg}"
        raise HoneError(f"--judge {shown!r}: use openai:MODEL@URL (e.g. "
                        "openai:qwen2.5-7b@http://127.0.0.1:8000/v1) or set OPENAI_BASE_URL")
    server_answers(url)
    return OpenAIBackend(m.group(1), url, timeout=context.config.timeout_s, temperature=context.config.temperature)


class OpenAIBackend:
    batched = False

    def __init__(self, model: str, base_url: str, timeout: float = 60.0, temperature: float | None = None):
        from openai import AsyncOpenAI

        self.model = model
        self.model_id = f"openai:{model}@{base_url}"
        self.price_key = f"openai:{model}"
        self.temperature = 0.0 if temperature is None else temperature
        self._client = LoopLocal(lambda: AsyncOpenAI(base_url=base_url, max_retries=0, timeout=timeout,
                                                     api_key=os.environ.get("OPENAI_API_KEY") or "not-needed"))

    async def complete(self, request: JudgeRequest) -> Completion:
        import openai

        messages = ([{"role": "system", "content": request.system}] if request.system else []) + request.chat()
        try:
            resp = await self._client.get().chat.completions.create(
                model=self.model, messages=messages, max_tokens=request.max_tokens, temperature=self.temperature)
        except openai.OpenAIError as e:
            raise sdk_call_error(e, status_error=openai.APIStatusError, timeout_error=openai.APITimeoutError,
                                 connection_error=openai.APIConnectionError) from None
        choice = resp.choices[0]
        usage = resp.usage
        return Completion(choice.message.content or "", usage.prompt_tokens if usage else 0,
                          usage.completion_tokens if usage else 0, choice.finish_reason or "")

    def received(self) -> list[tuple[JudgeRequest, Completion]]:
        return []

    async def aclose(self) -> None:
        client = self._client.pop()
        if client is not None:
            await client.close()
