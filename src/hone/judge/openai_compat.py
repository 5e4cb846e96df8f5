"""Any OpenAI-compatible chat-completions server (vLLM, llama.cpp, Ollama, OpenAI) through the `openai` SDK.

The key comes from OPENAI_API_KEY if set (local servers need none). Temperature defaults to 0 so a local
judge answers the same question the same way; the SDK's own retries are off (Hone's limiter retries).
"""

from __future__ import annotations

import os

from hone.judge.base import Completion, JudgeRequest
from hone.judge.ratelimit import LoopLocal, sdk_call_error


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

    async def aclose(self) -> None:
        client = self._client.pop()
        if client is not None:
            await client.close()
