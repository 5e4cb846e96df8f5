"""Benchmark suites, checked before use: declared kind against content, duplicates, contamination.

A suite is a Task JSONL file, optionally named on the command line as NAME=PATH (else the file's stem). A name
that claims a known benchmark (gsm8k, math, humaneval, mbpp, mmlu) must match the content: a GSM8K file called
MATH is refused. Contamination is n-gram overlap (13 words, GPT-3 style) between each task's prompt and any
training file; prompt text shared by many tasks of the suite (templates) does not count.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from hone.errors import HoneError
from hone.overlap import NGRAM, template_items, words
from hone.records import Task, read_tasks

KNOWN = ("gsm8k", "humaneval", "mbpp", "math", "mmlu")
CONTAMINATED_AT = 0.5  # share of a prompt's n-grams found in training data
_PLAIN_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")


@dataclass
class Suite:
    name: str
    path: Path
    tasks: list[Task]
    warnings: list[str] = field(default_factory=list)


def parse_spec(spec: str) -> tuple[str, Path]:
    """'NAME=PATH' or 'PATH' -> (name, path)."""
    name, sep, path = spec.partition("=")
    if sep and name and not os.path.exists(spec):
        return name.strip(), Path(path)
    return Path(spec).stem, Path(spec)


def load_suite(spec: str) -> Suite:
    name, path = parse_spec(spec)
    if not re.fullmatch(r"[\w.-]+", name):
        raise HoneError(f"{spec}: suite name {name!r} may only hold letters, digits, '_', '-' and '.'")
    return Suite(name=name, path=path, tasks=read_tasks(path))


def claimed_benchmark(name: str) -> str | None:
    """Which known benchmark a suite name claims: 'gsm8k_test' -> gsm8k, 'MATH-500' -> math."""
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    for bench in KNOWN:
        if any(w == bench or (w.startswith(bench) and w[len(bench):].isdigit()) for w in words):
            return bench
    return None


def _text(task: Task) -> str:
    return "\n".join(m["content"] for m in task.chat() if m["role"] != "assistant")


def _prose_words(reference: str) -> int:
    """Words of 3+ letters outside LaTeX commands and \\text{...}: a math answer has almost none."""
    stripped = re.sub(r"\\text\{[^}]*\}|\\[a-zA-Z]+", " ", reference)
    return len(re.findall(r"\b[a-zA-Z]{3,}\b", stripped))


def _looks_like_latex(text: str) -> bool:
    return bool(re.search(r"\\[a-zA-Z]+|\$", text))


def task_problems(task: Task) -> list[str]:
    """What about one task contradicts its declared kind."""
    out = []
    if task.kind == "math":
        if task.tests:
            out.append("declared math but has unit tests (looks like code)")
        if _prose_words(task.reference or "") > 3:
            out.append(f"declared math but its reference is prose, not an answer: {task.reference[:60]!r}")
    elif task.kind == "code":
        tests = task.tests or ""
        if "assert" not in tests and "def check" not in tests:
            out.append("declared code but its tests contain no assert and no check()")
        if re.search(r"^def check\s*\(", tests, re.M) and not task.entry_point:
            out.append("HumanEval-style tests (check(candidate)) but no entry_point")
    elif task.tests:
        out.append("declared open but has unit tests (declare it code so they run)")
    return out


def task_warnings(task: Task) -> list[str]:
    if task.kind == "open" and task.reference and _PLAIN_NUMBER.match(task.reference.strip().replace(",", "")):
        return ["declared open but its reference is a number: declare it math so a verifier grades it"]
    return []


def label_problems(name: str, tasks: list[Task]) -> list[str]:
    """Does the content fit the benchmark the suite's name claims?"""
    claim = claimed_benchmark(name)
    if claim is None:
        return []
    kinds = {t.kind for t in tasks}
    if claim in ("gsm8k", "math") and kinds != {"math"}:
        return [f"named {claim} but holds {', '.join(sorted(kinds))} tasks"]
    if claim in ("humaneval", "mbpp") and kinds != {"code"}:
        return [f"named {claim} but holds {', '.join(sorted(kinds))} tasks"]
    if claim == "mmlu" and kinds != {"choice"}:
        return [f"named mmlu but holds {', '.join(sorted(kinds))} tasks (MMLU is multiple choice)"]
    if claim == "gsm8k":
        latex = [t.id for t in tasks if not _PLAIN_NUMBER.match((t.reference or "").replace(",", ""))]
        if len(latex) > len(tasks) // 10:
            return [f"named gsm8k but {len(latex)} of {len(tasks)} references are not plain numbers "
                    f"(e.g. {latex[0]!r}); this looks like MATH"]
    if claim == "math":
        gsm = sum(1 for t in tasks if t.meta.get("category") == "gsm8k" or t.id.startswith("gsm8k-"))
        plain = sum(1 for t in tasks if _PLAIN_NUMBER.match((t.reference or "").replace(",", ""))
                    and not _looks_like_latex(_text(t)))
        if gsm > len(tasks) // 2 or plain == len(tasks):
            return [f"named math but looks like GSM8K ({gsm} tasks from gsm8k, {plain} of {len(tasks)} with plain "
                    "number answers and no LaTeX)"]
    if claim in ("humaneval", "mbpp"):
        want = "humaneval" if claim == "humaneval" else "asserts"
        from hone.grade.code import test_style

        other = [t.id for t in tasks if test_style(t) != want]
        if other:
            return [f"named {claim} but {len(other)} tasks use other tests than {claim}'s (e.g. {other[0]!r})"]
    return []


def duplicate_groups(tasks: list[Task]) -> list[list[str]]:
    """Ids of tasks whose prompts are the same text up to case and whitespace."""
    groups: dict[str, list[str]] = defaultdict(list)
    for t in tasks:
        groups[" ".join(_text(t).lower().split())].append(t.id)
    return [ids for ids in groups.values() if len(ids) > 1]


def check_suite(suite: Suite) -> None:
    """Raise HoneError naming the suite file and the first problems; keep soft findings as warnings."""
    problems = label_problems(suite.name, suite.tasks)
    for t in suite.tasks:
        problems += [f"task {t.id!r}: {p}" for p in task_problems(t)]
        suite.warnings += [f"task {t.id!r}: {w}" for w in task_warnings(t)]
    for ids in duplicate_groups(suite.tasks):
        problems.append(f"duplicate prompts: {', '.join(repr(i) for i in ids[:5])}")
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise HoneError(f"{suite.path}: suite {suite.name!r} fails its checks: {'; '.join(problems[:3])}{more}")


# ------------------------------------------------------------------------------------------ contamination
def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def training_texts(path: str | os.PathLike) -> Iterator[str]:
    """Every string in a training file: all fields of a JSONL file's records, or the whole of a text file."""
    p = Path(path)
    if not p.is_file():
        raise HoneError(f"{p}: no such training file")
    with open(p, encoding="utf-8", errors="replace") as f:
        if p.suffix not in (".jsonl", ".json"):
            yield f.read()
            return
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield from _strings(json.loads(line))
            except json.JSONDecodeError as e:
                raise HoneError(f"{p}:{n}: not valid JSON ({e.msg})") from None


def _grams(tokens: list[str], size: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + size]) for i in range(len(tokens) - size + 1)}


def contamination(suites: list[Suite], train_paths: list[str | os.PathLike], n: int = NGRAM,
                  flag_at: float = CONTAMINATED_AT) -> dict[str, Any]:
    """Per suite: tasks whose prompt n-grams appear in the training files, with the share that does.

    A prompt shorter than n words counts as one n-gram of its own length (found only if the training text
    holds the whole prompt). `contaminated` lists tasks at or above `flag_at`; `overlapping` the rest > 0.
    """
    prompt_grams: dict[tuple[str, str], set[tuple[str, ...]]] = {}
    for s in suites:
        counts: dict[tuple[str, ...], int] = defaultdict(int)
        per_task = {}
        for t in s.tasks:
            tokens = words(_text(t))
            grams = _grams(tokens, min(n, len(tokens))) if tokens else set()
            per_task[t.id] = grams
            for g in grams:
                counts[g] += 1
        template = template_items(len(s.tasks))
        for tid, grams in per_task.items():
            prompt_grams[(s.name, tid)] = {g for g in grams if counts[g] <= template}
    wanted: dict[tuple[str, ...], list[tuple[str, str]]] = defaultdict(list)
    for key, grams in prompt_grams.items():
        for g in grams:
            wanted[g].append(key)
    sizes = sorted({len(g) for g in wanted})
    found: set[tuple[str, ...]] = set()
    for path in train_paths:
        for text in training_texts(path):
            tokens = words(text)
            for size in sizes:
                for i in range(len(tokens) - size + 1):
                    g = tuple(tokens[i:i + size])
                    if g in wanted:
                        found.add(g)
    report: dict[str, Any] = {"train_files": [str(p) for p in train_paths], "ngram": n, "flag_at": flag_at,
                              "suites": {}}
    for s in suites:
        flagged, partial = [], []
        for t in s.tasks:
            grams = prompt_grams[(s.name, t.id)]
            if not grams:
                continue
            share = len(grams & found) / len(grams)
            if share >= flag_at:
                flagged.append({"id": t.id, "overlap": round(share, 3)})
            elif share > 0:
                partial.append({"id": t.id, "overlap": round(share, 3)})
        report["suites"][s.name] = {"tasks": len(s.tasks), "contaminated": flagged, "overlapping": partial}
    return report
