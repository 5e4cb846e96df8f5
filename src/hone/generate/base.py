"""The Generator protocol and sampling parameters shared by every backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Protocol, Sequence

from pydantic import BaseModel, ConfigDict, Field

from hone.records import Generation


class GenParams(BaseModel):
    """Sampling parameters. Greedy when temperature is 0."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1)
    seed: int = 0
    batch_size: int = Field(16, ge=1)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class Request:
    """One (task, sample) to generate; `messages` is the chat to answer."""

    id: str
    sample: int
    messages: list[dict[str, str]]


Progress = Callable[[int], None]


class Generator(Protocol):
    name: str

    def generate(self, requests: Sequence[Request], params: GenParams,
                 progress: Progress | None = None) -> Iterator[Generation]:
        """Yield one Generation per request, in any order, as soon as each is done."""
        ...
