"""Judge settings: the price table (USD per million tokens), limits, retries, timeouts. Loadable from YAML.

Prices are those Anthropic published for standard (not batch) calls; the Message Batches API costs
`batch_discount` of them. A model missing from the table has an unknown cost: its calls are still counted in
tokens, but a `--budget-usd` cap cannot be enforced for it, so that combination is refused.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

from hone.config import load_config


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    # Some models charge more for every token of a request whose prompt is longer than a threshold.
    long_prompt_tokens: int | None = None
    long_input: float | None = None
    long_output: float | None = None

    def usd(self, input_tokens: int, output_tokens: int) -> float:
        long = self.long_prompt_tokens is not None and input_tokens > self.long_prompt_tokens
        rate_in = self.long_input if long and self.long_input is not None else self.input
        rate_out = self.long_output if long and self.long_output is not None else self.output
        return (input_tokens * rate_in + output_tokens * rate_out) / 1e6


DEFAULT_ANTHROPIC_MODEL = "claude-haiku-5-5"

DEFAULT_PRICES: dict[str, Price] = {
    "anthropic:claude-haiku-5-5": Price(input=0.10, output=0.50, long_prompt_tokens=100_000, long_input=0.50,
                                        long_output=2.50),
    "anthropic:claude-haiku-4-5": Price(input=1.0, output=5.0),
    "anthropic:claude-haiku-4-5-20251001": Price(input=1.0, output=5.0),
    "anthropic:claude-sonnet-5-5": Price(input=2.0, output=10.0),
    "anthropic:claude-sonnet-4-6": Price(input=3.0, output=15.0),
    "anthropic:claude-sonnet-4-5": Price(input=3.0, output=15.0),
    "anthropic:claude-opus-5-5": Price(input=4.0, output=20.0),
    "local": Price(input=0.0, output=0.0),
}


class JudgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prices: dict[str, Price] = Field(default_factory=dict, description="added to / overriding DEFAULT_PRICES")
    batch_discount: float = Field(0.5, gt=0, le=1)
    max_tokens: int = Field(1024, ge=16)
    timeout_s: float = Field(60.0, gt=0)
    max_attempts: int = Field(6, ge=1)
    base_delay_s: float = Field(1.0, ge=0)
    max_delay_s: float = Field(60.0, ge=0)
    rpm: int | None = Field(None, ge=1, description="requests per minute")
    tpm: int | None = Field(None, ge=1, description="tokens per minute (prompt estimate + max_tokens)")
    temperature: float | None = Field(None, ge=0, description="None: Anthropic default, 0 for the others")
    reask: int = Field(1, ge=0, description="times an invalid reply is re-asked before it is an error")
    poll_interval_s: float = Field(30.0, gt=0)
    batch_max_requests: int = Field(10_000, ge=1, le=100_000)
    batch_flush_s: float = Field(0.5, ge=0)

    def price(self, key: str) -> Price | None:
        table = {**DEFAULT_PRICES, **self.prices}
        return table.get(key)


def load_judge_config(path: str | os.PathLike | None) -> JudgeConfig:
    return JudgeConfig() if path is None else load_config(path, JudgeConfig)
