"""Benchmark overlap: one index of held-out items that training text is checked against, and one n-gram default.

A held-out number is only honest if nothing the model trains on holds the item. The data stage drops training
rows that hit the index (hone.data.mix.decontaminate), the loop refuses training tasks that hit its held-out
suites before round 0 (hone.loop.check_heldout_is_separate), and the bench reports which suite items a training
file overlaps (hone.bench.suites.contamination), all with the words, short-item rule, template rule and n-gram
size defined here.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Iterable, Mapping, Sequence

from hone.errors import HoneError
from hone.records import Task

NGRAM = 13  # word n-gram size of every overlap check (GPT-3's decontamination rule)
_WORD = re.compile(r"\w+")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_SHORT = "\0short"  # marks a whole short item among the n-grams


def words(text: str) -> list[str]:
    """Lowercased words: what long items are compared on."""
    return _WORD.findall(text.lower())


def tokens(text: str) -> list[str]:
    """Words and symbols: what a short item (`What is 12 + 34?`) is compared on, operators included."""
    return _TOKEN.findall(text.lower())


def template_items(suite_size: int) -> int:
    """More items of a suite than this sharing an n-gram make it template text, not item content."""
    return max(3, suite_size // 10)


def item_texts(task: Task) -> list[str]:
    """What of a held-out item must not be trained on: every message but the system prompt."""
    return [m["content"] for m in task.chat() if m["role"] != "system"]


class OverlapIndex:
    """The n-grams and ids of held-out suites, to test training text against.

    Long items are compared on word n-grams; an item shorter than n words is compared whole, on its words
    and symbols (so `12 + 34` and `12 - 34` differ). System messages, and n-grams found in more than
    `template_items` distinct items of a suite (an instruction every item repeats, such as "Complete the
    following Python function..."), are template text, not item content: they would flag every training row
    written in the same format.
    """

    def __init__(self, suites: Mapping[str, Sequence[Task]], n: int = NGRAM):
        if n < 1:
            raise HoneError(f"n-gram size must be at least 1 (got {n})")
        self.n = n
        self.ids: dict[str, tuple[str, str]] = {}
        self.long: dict[tuple[str, ...], tuple[str, str]] = {}
        self.short: dict[int, dict[tuple[str, ...], tuple[str, str]]] = defaultdict(dict)
        for suite, tasks in suites.items():
            owners: dict[tuple[str, ...], tuple[str, str]] = {}
            items_with: Counter = Counter()
            for t in tasks:
                self.ids.setdefault(t.id, (suite, t.id))
                grams: set[tuple[str, ...]] = set()
                for text in item_texts(t):
                    grams.update(self._grams(text))
                for g in grams:
                    owners.setdefault(g, (suite, t.id))
                items_with.update(grams)
            template = template_items(len(tasks))
            for g, owner in owners.items():
                if items_with[g] > template:
                    continue
                if g[0] == _SHORT:
                    self.short[len(g) - 1].setdefault(g[1:], owner)
                else:
                    self.long.setdefault(g, owner)

    def _grams(self, text: str) -> set[tuple[str, ...]]:
        w = words(text)
        if len(w) >= self.n:
            return {tuple(w[i : i + self.n]) for i in range(len(w) - self.n + 1)}
        t = tokens(text)
        return {(_SHORT, *t)} if t else set()

    def hit(self, texts: Iterable[str], task_id: str | None = None) -> tuple[str, str] | None:
        """(suite, held-out id) that these texts (of one training row or task, made from `task_id`) overlap."""
        if task_id in self.ids:
            return self.ids[task_id]
        for text in texts:
            w = words(text)
            for i in range(len(w) - self.n + 1):
                if (found := self.long.get(tuple(w[i : i + self.n]))):
                    return found
            t = tokens(text)
            for size, grams in self.short.items():
                for i in range(len(t) - size + 1):
                    if (found := grams.get(tuple(t[i : i + size]))):
                        return found
        return None
