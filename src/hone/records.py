"""The records that flow between stages, and their JSONL I/O.

Reading validates every line and reports `file:line: what is wrong`. Writing is atomic. Long stages append to
a `.partial` file that is renamed over the output only when the stage finishes, so a killed stage resumes
from the partial file and a partial output never looks complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Generic, Iterable, Iterator, Literal, Sequence, TypeVar

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_serializer, field_validator,
                      model_validator)

from hone.atomic import atomic_path
from hone.errors import HoneError, dotted, problem
from hone.evidence import Evidence, OtherEvidence, with_kind

Kind = Literal["math", "code", "open", "choice"]
Role = Literal["system", "user", "assistant"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(Record):
    role: Role
    content: str


class Task(Record):
    """One thing to ask the model, with whatever ground truth exists for it."""

    id: str = Field(min_length=1)
    kind: Kind
    prompt: str | None = None
    messages: list[Message] | None = None
    reference: str | None = None
    tests: str | None = None
    entry_point: str | None = None
    options: list[str] | None = None  # a choice task's options, lettered A, B, C, ... in this order
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "Task":
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("a task needs exactly one of `prompt` or `messages`")
        if self.messages is not None and (not self.messages or self.messages[-1].role != "user"):
            raise ValueError("`messages` must end with a user message")
        if self.kind == "code" and not self.tests:
            raise ValueError("a code task needs `tests`")
        if self.kind == "math" and not self.reference:
            raise ValueError("a math task needs a `reference` answer")
        if self.kind == "choice":
            _check_choice(self.options, self.reference)
        elif self.options is not None:
            raise ValueError(f"`options` belong to choice tasks, not {self.kind}")
        return self

    def chat(self) -> list[dict[str, str]]:
        """The task as chat messages (what every renderer takes)."""
        if self.messages is not None:
            return [m.model_dump() for m in self.messages]
        return [{"role": "user", "content": self.prompt or ""}]


def _check_choice(options: list[str] | None, reference: str | None) -> None:
    if not options or len(options) < 2 or len(options) > 26:
        raise ValueError("a choice task needs 2 to 26 `options`")
    if any(not o.strip() for o in options):
        raise ValueError("a choice task's options must not be empty")
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[: len(options)]
    if reference is None or len(reference) != 1 or reference not in letters:
        raise ValueError(f"a choice task's `reference` must be one letter of {letters} (got {reference!r})")


class Generation(Record):
    id: str
    sample: int = 0
    model: str
    output: str
    # None: unknown (records made by other tools); never read as truncated.
    finish_reason: Literal["stop", "length", "error"] | None = None
    retryable: bool = False  # an error a re-run may fix (server down, out of memory), not one of the input
    tokens: int = 0
    seconds: float = 0.0
    params: dict[str, Any] = Field(default_factory=dict)


Outcome = Literal["pass", "fail", "error", "win", "tie", "loss"]


class Verdict(Record):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: str
    sample: int = 0
    judge: str
    verdict: Outcome
    score: float | None = None
    reason: str = ""
    evidence: Evidence = Field(default_factory=OtherEvidence)  # typed per kind of judge (hone.evidence)

    @field_validator("evidence", mode="before")
    @classmethod
    def _evidence_kind(cls, value: Any, info: ValidationInfo) -> Any:
        """Evidence written before `kind` existed: inferred from the judge's name and the keys."""
        return with_kind(info.data.get("judge", ""), value)

    @field_serializer("evidence", mode="wrap")
    def _evidence_out(self, value: Any, handler: Any) -> Any:
        """A plain dict set without validation (`model_copy(update=...)`) is written as it will be read back."""
        return with_kind(self.judge, value) if isinstance(value, dict) else handler(value)


class Critique(Record):
    """A failed answer, the model's critique of it, its rewrite, and both live verdicts."""

    id: str
    sample: int = 0
    attempt: int = 0
    mode: Literal["self-critique", "distillation"]
    model: str
    judge: str
    original: str
    original_verdict: Outcome
    feedback: str
    critique: str
    rewrite: str
    rewrite_verdict: Outcome
    rewrite_reason: str = ""
    accepted: bool
    round: int | None = None


class SFTExample(Record):
    id: str
    messages: list[Message]
    source: Literal["rewrite", "sample", "replay", "forward", "reverse", "seed"]
    lineage: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ends_with_assistant(self) -> "SFTExample":
        if not self.messages or self.messages[-1].role != "assistant":
            raise ValueError("an SFT example must end with an assistant message")
        return self


class PreferencePair(Record):
    id: str
    prompt: list[Message]
    chosen: str
    rejected: str
    lineage: dict[str, Any] = Field(default_factory=dict)


R = TypeVar("R", bound=BaseModel)


def _describe(err: ValidationError) -> str:
    loc, msg = problem(err)
    return f"{dotted(loc)}: {msg}" if loc else msg


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; raise `file:line:` on bad JSON."""
    p = Path(path)
    if not p.is_file():
        raise HoneError(f"{p}: no such file")
    with open(p, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise HoneError(f"{p}:{n}: not UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise HoneError(f"{p}:{n}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise HoneError(f"{p}:{n}: expected a JSON object, got {type(obj).__name__}")
            yield n, obj


def read_records(path: str | os.PathLike, model: type[R], allow_empty: bool = False) -> list[R]:
    """Read and validate every line; the first bad line raises `file:line: reason`."""
    p = Path(path)
    out: list[R] = []
    for n, obj in iter_jsonl(p):
        try:
            out.append(model.model_validate(obj))
        except ValidationError as e:
            raise HoneError(f"{p}:{n}: {_describe(e)}") from None
    if not out and not allow_empty:
        raise HoneError(f"{p}: no records (the file is empty)")
    return out


def read_tasks(path: str | os.PathLike) -> list[Task]:
    tasks = read_records(path, Task)
    seen: set[str] = set()
    for t in tasks:
        if t.id in seen:
            raise HoneError(f"{path}: duplicate task id {t.id!r}")
        seen.add(t.id)
    return tasks


def dumps(record: BaseModel) -> str:
    return json.dumps(record.model_dump(mode="json"), ensure_ascii=False)


def write_records(path: str | os.PathLike, records: Iterable[BaseModel]) -> int:
    """Write all records atomically; return how many."""
    n = 0
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for r in records:
                f.write(dumps(r) + "\n")
                n += 1
            f.flush()
            os.fsync(f.fileno())
    return n


_OPEN_PARTIALS: dict[Path, "PartialJsonl"] = {}


def kept_partials() -> list[tuple[Path, int]]:
    """(partial file, finished records) for each output still being built in this process: what a Ctrl-C keeps."""
    return [(p.partial, len(p.records)) for p in _OPEN_PARTIALS.values() if p.partial.exists()]


class PartialJsonl(Generic[R]):
    """An output built line by line: appended to `<out>.partial`, renamed to `<out>` by `finish()`.

    On start it reloads the valid lines of an earlier, killed attempt (a torn last line is dropped), so
    the stage can skip what is done. `key` says which records count as the same item.
    """

    def __init__(self, path: str | os.PathLike, model: type[R], key: Callable[[R], Any]):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.model = model
        self.key = key
        self.records: list[R] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.partial.exists():
            good = []
            with open(self.partial, encoding="utf-8") as f:
                for line in f:
                    if not line.endswith("\n"):
                        break  # torn write from a kill: drop it
                    try:
                        self.records.append(model.model_validate_json(line))
                        good.append(line)
                    except ValidationError:
                        break
            with atomic_path(self.partial) as tmp:
                tmp.write_text("".join(good), encoding="utf-8")
        self.done = {key(r) for r in self.records}
        self._fh: Any = None  # opened at the first append: a stage that fails before any item leaves no file
        _OPEN_PARTIALS[self.partial] = self

    def append(self, record: R) -> None:
        if self._fh is None:
            self._fh = open(self.partial, "a", encoding="utf-8")
        try:
            self._fh.write(dumps(record) + "\n")
            self._fh.flush()
        except OSError as e:  # a full disk: name the file
            raise OSError(e.errno, e.strerror, str(self.partial)) from e
        self.records.append(record)
        self.done.add(self.key(record))

    def finish(self, order: Callable[[R], Any] | None = None, unfinished: Sequence[R] = ()) -> list[R]:
        """Write the output atomically (sorted by `order` if given) and remove the partial file.

        `unfinished` records (errors a re-run may fix) are written too, so they can be seen, but the partial
        file stays without them: the stage is not complete and a re-run redoes exactly those items.
        """
        self.close()
        _OPEN_PARTIALS.pop(self.partial, None)
        records = [*self.records, *unfinished]
        if order:
            records.sort(key=order)
        write_records(self.path, records)
        if unfinished:
            self.partial.touch()  # the stage is not complete, even when no item of it is final yet
        else:
            self.partial.unlink(missing_ok=True)
        return records

    def close(self) -> None:
        if self._fh is not None and not self._fh.closed:
            try:
                self._fh.close()
            except OSError as e:
                raise OSError(e.errno, e.strerror, str(self.partial)) from e
