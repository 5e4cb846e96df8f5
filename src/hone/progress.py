"""Rich progress bars for anything that takes more than a second; quiet when output is not a terminal."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


@contextlib.contextmanager
def bar(description: str, total: int, done: int = 0) -> Iterator[Callable[[int], None]]:
    """A progress bar; yields `advance(n)`. `done` items from an earlier attempt show as already complete."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as progress:
        task = progress.add_task(description, total=total + done, completed=done)
        yield lambda n=1: progress.advance(task, n)


def stage_bar(description: str) -> Callable[[int, int], Callable[[int], None]]:
    """A `progress_factory(todo, done)` for stage functions, which learn the totals only once they start."""
    stack = contextlib.ExitStack()

    def factory(todo: int, done: int) -> Callable[[int], None]:
        if done:
            console.print(f"resuming: {done} done earlier, {todo} to go")
        return stack.enter_context(bar(description, todo, done))

    factory.close = stack.close  # type: ignore[attr-defined]
    return factory
