"""Guards every training set passes before it is written: dedup, benchmark decontamination, replay mixing.

Decontamination drops any row whose text shares a word n-gram (lowercased) with a benchmark item, or whose
source task id is a benchmark id. A benchmark text shorter than n words is looked for whole (words and
symbols), so short items (arithmetic, one-line questions) are still caught verbatim.
Replay rows from the original training set are mixed in at a fixed share, seeded, to hold off forgetting.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence, Union

from hone.bench.suites import NGRAM as DEFAULT_NGRAM
from hone.bench.suites import words
from hone.errors import HoneError
from hone.records import PreferencePair, SFTExample, Task

Row = Union[SFTExample, PreferencePair]
_TOKEN = re.compile(r"\w+|[^\w\s]")
_SHORT = "\0short"  # marks a whole short item among the n-grams


def tokens(text: str) -> list[str]:
    """Words and symbols: what a short item (`What is 12 + 34?`) is compared on, operators included."""
    return _TOKEN.findall(text.lower())


def template_items(suite_size: int) -> int:
    """More items than this sharing an n-gram make it template text (the rule of `hone.bench.suites`)."""
    return max(3, suite_size // 10)


def row_texts(row: Row) -> list[str]:
    if isinstance(row, SFTExample):
        return [m.content for m in row.messages]
    return [m.content for m in row.prompt] + [row.chosen, row.rejected]


def row_fingerprint(row: Row) -> str:
    """Content identity of a row (ids and lineage aside): two rows that train the same thing share it."""
    if isinstance(row, SFTExample):
        body = [[m.role, m.content.strip()] for m in row.messages]
    else:
        body = [[[m.role, m.content.strip()] for m in row.prompt], row.chosen.strip(), row.rejected.strip()]
    return hashlib.sha256(json.dumps(body, ensure_ascii=False).encode()).hexdigest()


def dedup(rows: Iterable[Row]) -> tuple[list[Row], list[str]]:
    """Keep the first row of each content; return (kept, ids of the dropped duplicates)."""
    seen: set[str] = set()
    kept, dropped = [], []
    for r in rows:
        fp = row_fingerprint(r)
        if fp in seen:
            dropped.append(r.id)
            continue
        seen.add(fp)
        kept.append(r)
    return kept, dropped


class BenchIndex:
    """The n-grams and ids of benchmark suites, to test training rows against.

    Long items are compared on word n-grams; an item shorter than n words is compared whole, on its words
    and symbols (so `12 + 34` and `12 - 34` differ). System messages, and n-grams found in
    `boilerplate_items` or more distinct benchmark items (an instruction every item of a suite repeats, such
    as "Complete the following Python function..."), are template text, not item content: they would flag
    every training row written in the same format.
    """

    def __init__(self, suites: Mapping[str, Sequence[Task]], n: int = DEFAULT_NGRAM):
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
                for m in t.chat():
                    if m["role"] != "system":
                        grams.update(self._grams(m["content"]))
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

    def hit(self, row: Row) -> tuple[str, str] | None:
        """(suite, benchmark id) that `row` overlaps, or None."""
        task_id = row.lineage.get("task_id")
        if task_id in self.ids:
            return self.ids[task_id]
        for text in row_texts(row):
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


def decontaminate(rows: Iterable[Row], index: BenchIndex) -> tuple[list[Row], dict[str, dict[str, str]]]:
    """Drop rows that overlap a benchmark; return (kept, {row id: {"suite", "bench_id"}})."""
    kept, dropped = [], {}
    for r in rows:
        found = index.hit(r)
        if found:
            dropped[r.id] = {"suite": found[0], "bench_id": found[1]}
        else:
            kept.append(r)
    return kept, dropped


def replay_count(n_new: int, share: float) -> int:
    """How many replay rows make `share` of the final set."""
    if not 0.0 <= share < 1.0:
        raise HoneError(f"replay share must be in [0, 1) (got {share})")
    return round(n_new * share / (1.0 - share))


def as_replay(row: SFTExample) -> SFTExample:
    return SFTExample(id=f"replay/{row.id}", messages=row.messages, source="replay",
                      lineage={**row.lineage, "mode": "replay", "replay_of": row.id, "original_source": row.source})


@dataclass
class MixReport:
    built: int = 0
    duplicates: list[str] = field(default_factory=list)
    contaminated: dict[str, dict[str, str]] = field(default_factory=dict)
    replay_wanted: int = 0
    replay_added: int = 0
    final: int = 0

    def to_dict(self) -> dict:
        return {"built": self.built, "duplicates": len(self.duplicates), "duplicate_ids": self.duplicates,
                "contaminated": len(self.contaminated), "contaminated_rows": self.contaminated,
                "replay_wanted": self.replay_wanted, "replay_added": self.replay_added, "final": self.final}


def mix(rows: Sequence[Row], *, index: BenchIndex | None = None, replay: Sequence[SFTExample] = (),
        replay_share: float = 0.0, seed: int = 0) -> tuple[list[Row], MixReport]:
    """Dedup, decontaminate, add the replay share (itself decontaminated and deduped), shuffle; seeded."""
    report = MixReport(built=len(rows))
    replay_count(0, replay_share)  # validates the share before any work
    if replay_share and any(isinstance(r, PreferencePair) for r in rows):
        raise HoneError("replay mixes SFT rows from the original training set; it does not apply to DPO pairs")
    kept, report.duplicates = dedup(rows)
    if index is not None:
        kept, report.contaminated = decontaminate(kept, index)
    report.replay_wanted = replay_count(len(kept), replay_share)
    if report.replay_wanted:
        seen = {row_fingerprint(r) for r in kept}
        pool = [as_replay(r) for r in replay if row_fingerprint(r) not in seen]
        pool, _ = dedup(pool)
        if index is not None:
            pool, dropped = decontaminate(pool, index)
            report.contaminated.update(dropped)
        rng = random.Random(seed)
        picked = rng.sample(pool, min(report.replay_wanted, len(pool)))
        report.replay_added = len(picked)
        kept = kept + picked
    random.Random(seed).shuffle(kept)
    report.final = len(kept)
    return kept, report
