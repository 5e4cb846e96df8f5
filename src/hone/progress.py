"""Progress for anything that takes more than a second: one Rich bar per stage on a terminal, plain lines
otherwise.

A bar shows the stage (with its round), items done of the total, items per second, the time left, and a note
the stage updates as it learns more (training loss and tokens per second). When the output is not a terminal
(CI, a pipe, the demo reading an arm's output) the same facts go out as one plain line every
`PLAIN_EVERY_S` seconds, and one when such a stage ends: a log shows a long stage moving without filling up,
and a stage of a few seconds (or one that fails) adds nothing to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn,
                           TimeRemainingColumn)
from rich.text import Text

console = Console(stderr=True)
Say = Callable[[str], None]  # where a long-running command tells its user what it is doing (print, a log)
PLAIN_EVERY_S = 10.0


class _Rate(ProgressColumn):
    """Items per second over the last few updates (Rich's own estimate)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.1f}/s" if speed < 100 else f"{speed:.0f}/s", style="cyan")


class Advance:
    """`advance(n)` moves the bar; `advance.note(text)` sets the text shown after it (loss, tokens/s)."""

    def __init__(self, progress: Progress | None, task: int | None, plain: "_Plain | None"):
        self._progress, self._task, self._plain = progress, task, plain
        self._source: Callable[[], str] | None = None
        self._every, self._last = 0.0, 0.0

    def note_from(self, source: Callable[[], str], every_s: float) -> "Advance":
        """Refresh the note from `source()` now and then at most every `every_s` seconds (e.g. judge spend)."""
        self._source, self._every = source, every_s
        self._refresh()
        return self

    def _refresh(self) -> None:
        self._last = time.monotonic()
        self.note(self._source())

    def __call__(self, n: int = 1) -> None:
        if self._source is not None and time.monotonic() - self._last >= self._every:
            self._refresh()
        if self._progress is not None:
            self._progress.advance(self._task, n)
        if self._plain is not None:
            self._plain.advance(n)

    def note(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, note=text)
        if self._plain is not None:
            self._plain.note = text


class _Plain:
    """The bar as lines: at most one every PLAIN_EVERY_S seconds, and one when the stage ends."""

    def __init__(self, description: str, total: int, done: int):
        self.description, self.total, self.done, self.start_done = description, total, done, done
        self.t0 = self.last = time.monotonic()
        self.note = ""
        self.lines = 0

    def advance(self, n: int) -> None:
        self.done += n
        if time.monotonic() - self.last >= PLAIN_EVERY_S:
            self.emit()

    def emit(self) -> None:
        self.lines += 1
        self.last = now = time.monotonic()
        rate = (self.done - self.start_done) / max(now - self.t0, 1e-9)
        left = f", eta {_duration((self.total - self.done) / rate)}" if rate > 0 and self.done < self.total else ""
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        note = f", {self.note}" if self.note else ""
        console.print(f"{self.description}: {self.done}/{self.total}{pct}, {rate:.1f}/s{left}{note}",
                      highlight=False, soft_wrap=True)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


@contextlib.contextmanager
def bar(description: str, total: int, done: int = 0) -> Iterator[Advance]:
    """A progress bar; yields an `Advance`. `done` items from an earlier attempt show as already complete."""
    if not console.is_terminal:
        plain = _Plain(description, total + done, done)
        yield Advance(None, None, plain)
        if plain.lines:  # a stage long enough to have said something also says that it ended
            plain.emit()
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(),
               TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[note]}"))
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total + done, completed=done, note="")
        yield Advance(progress, task, None)


class stage_bar:  # noqa: N801 - a factory function to its callers, and closable with `with`
    """A `progress(todo, done)` for stage functions (`hone.stage_contract.ProgressFactory`), which learn the
    totals only once they start.

    `note()`, if given, is shown after the bar and re-read every `note_every_s` seconds while the stage runs.
    `close()` (or leaving `with stage_bar(...) as factory:`) ends the bar the stage opened."""

    def __init__(self, description: str, note: Callable[[], str] | None = None, note_every_s: float = 5.0):
        self.description, self.note, self.note_every_s = description, note, note_every_s
        self._stack = contextlib.ExitStack()

    def __call__(self, todo: int, done: int) -> Advance:
        if done:
            console.print(f"{self.description}: resuming, {done} done earlier, {todo} to go", highlight=False)
        advance = self._stack.enter_context(bar(self.description, todo, done))
        return advance.note_from(self.note, self.note_every_s) if self.note else advance

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> "stage_bar":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def step_bars(prefix: str) -> Callable[[str, Callable[[], str] | None], stage_bar]:
    """A `progress(step, note)` for a stage of several steps (hone.stage_contract.StepProgress): one `stage_bar`
    per step, named `<prefix> · <step>`."""
    return lambda step, note=None: stage_bar(f"{prefix} · {step}", note=note)


class TokenRate:
    """New tokens per second of a generation stage, from the `tokens` of the records it appends to `<out>.partial`
    (read a little at a time: a progress note, not a parse of the whole file each time)."""

    def __init__(self, out: str | os.PathLike):
        self.partial = Path(out).with_name(Path(out).name + ".partial")
        self.offset, self.tokens = 0, 0
        self.start: tuple[float, int] | None = None

    def _read(self) -> None:
        try:
            with open(self.partial, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return
        end = chunk.rfind(b"\n") + 1  # complete lines only
        for line in chunk[:end].splitlines():
            try:
                self.tokens += int(json.loads(line).get("tokens") or 0)
            except (ValueError, AttributeError):
                pass
        self.offset += end

    def __call__(self) -> str:
        self._read()
        now = time.monotonic()
        if self.start is None:  # records of an earlier attempt are not this run's speed
            self.start = (now, self.tokens)
            return ""
        t0, k0 = self.start
        return f"{(self.tokens - k0) / (now - t0):,.0f} new tokens/s" if now > t0 else ""
