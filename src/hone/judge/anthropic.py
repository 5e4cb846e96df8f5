"""Claude through the official `anthropic` SDK (Messages API), one request per call.

Credentials and the endpoint come from the environment (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL), resolved by
the SDK itself; Hone never reads, stores or prints the key. The SDK's own retries are off: Hone's limiter
retries, so that every attempt is rate-limited and counted. No sampling parameters are sent by default:
current Claude models reject `temperature` / `top_p`.
"""

from __future__ import annotations

from hone.errors import HoneError
from hone.judge.base import Completion, JudgeRequest
from hone.judge.config import DEFAULT_ANTHROPIC_MODEL
from hone.judge.ratelimit import LoopLocal, sdk_call_error
from hone.judge.registry import BackendContext


def open_backend(arg: str, context: BackendContext) -> "AnthropicBackend":
    """`anthropic[:MODEL]` (default model: a current Haiku)."""
    require_key(f"anthropic:{arg}" if arg else "anthropic")
    return AnthropicBackend(arg or DEFAULT_ANTHROPIC_MODEL, timeout=context.config.timeout_s,
                            temperature=context.config.temperature)


def require_key(spec: str) -> None:
    from hone.preflight import require_env

    require_env(("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"), f"the judge {spec!r}")


def client_factory(timeout: float):
    """A maker of SDK clients (one per event loop); called once now, so missing credentials fail at once."""
    import anthropic

    def make():
        try:
            return anthropic.AsyncAnthropic(max_retries=0, timeout=timeout)
        except anthropic.AnthropicError as e:
            raise HoneError(f"anthropic judge: {str(e).splitlines()[0]} (set ANTHROPIC_API_KEY)") from None

    make()  # fail now, not on the first item, when no credentials are set
    return make


def message_text(message) -> str:
    """The text blocks of a reply; thinking and other block types are not the answer."""
    return "".join(block.text for block in message.content if getattr(block, "type", "") == "text")


def message_params(model: str, request: JudgeRequest, temperature: float | None) -> dict:
    params = {"model": model, "max_tokens": request.max_tokens, "messages": request.chat()}
    if request.system:
        params["system"] = request.system
    if temperature is not None:
        params["temperature"] = temperature
    return params


def anthropic_call_error(exc: Exception):
    import anthropic

    return sdk_call_error(exc, status_error=anthropic.APIStatusError, timeout_error=anthropic.APITimeoutError,
                          connection_error=anthropic.APIConnectionError)


class AnthropicBackend:
    batched = False

    def __init__(self, model: str, timeout: float = 60.0, temperature: float | None = None):
        self.model = model
        self.model_id = f"anthropic:{model}"
        self.price_key = self.model_id
        self.temperature = temperature
        self._client = LoopLocal(client_factory(timeout))

    async def complete(self, request: JudgeRequest) -> Completion:
        import anthropic

        try:
            msg = await self._client.get().messages.create(**message_params(self.model, request, self.temperature))
        except anthropic.AnthropicError as e:
            raise anthropic_call_error(e) from None
        return Completion(message_text(msg), msg.usage.input_tokens, msg.usage.output_tokens, msg.stop_reason or "")

    def received(self) -> list[tuple[JudgeRequest, Completion]]:
        return []

    async def aclose(self) -> None:
        client = self._client.pop()
        if client is not None:
            await client.close()
