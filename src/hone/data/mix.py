"""Guards every training set passes before it is written: dedup, benchmark decontamination, replay mixing.

Decontamination drops any row that hits the benchmarks' overlap index (hone.overlap.OverlapIndex: a shared word
n-gram, a short item found whole, or a source task id that is a benchmark id).
Replay rows from the original training set are mixed in at a fixed share, seeded, to hold off forgetting.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Iterable, Sequence, Union

from hone.errors import HoneError
from hone.overlap import OverlapIndex
from hone.records import PreferencePair, SFTExample

Row = Union[SFTExample, PreferencePair]
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


def decontaminate(rows: Iterable[Row], index: OverlapIndex) -> tuple[list[Row], dict[str, dict[str, str]]]:
    """Drop rows that overlap a benchmark; return (kept, {row id: {"suite", "bench_id"}})."""
    kept, dropped = [], {}
    for r in rows:
        found = index.hit(row_texts(r), r.lineage.get("task_id"))
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


def mix(rows: Sequence[Row], *, index: OverlapIndex | None = None, replay: Sequence[SFTExample] = (),
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
