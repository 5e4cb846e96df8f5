"""Convert public benchmark formats into Tasks, refusing content that does not match the declared format.

Ids are stable: the dataset's own id where it has one, otherwise a hash of the question text, so re-importing
a reordered file gives the same ids. JSONL is read line by line (errors name the line); parquet, CSV, JSON
arrays and `datasets.save_to_disk` folders are read through the `datasets` library, and `--field KEY=COLUMN`
renames the user's columns to the fields each format reads, so one converter serves every container.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

from hone.errors import HoneError
from hone.records import Task, iter_jsonl

FORMATS = ("gsm8k", "math", "humaneval", "mbpp", "mmlu", "jsonl")

_SIGNATURES: dict[str, set[str]] = {
    "gsm8k": {"question", "answer"},
    "math": {"problem", "solution"},
    "humaneval": {"task_id", "prompt", "entry_point", "test"},
    "mbpp": {"task_id", "code", "test_list"},
}


def guess_format(obj: dict[str, Any]) -> str | None:
    """Which known format a record looks like, from its keys and content."""
    keys = set(obj)
    if _SIGNATURES["humaneval"] <= keys:
        return "humaneval"
    if _SIGNATURES["mbpp"] <= keys:
        return "mbpp"
    if _SIGNATURES["gsm8k"] <= keys and "####" in str(obj.get("answer", "")):
        return "gsm8k"
    if _SIGNATURES["math"] <= keys and "\\boxed" in str(obj.get("solution", "")):
        return "math"
    if "prompt" in keys or "messages" in keys:
        return "jsonl"
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), with nested braces."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    if not starts:
        return None
    i = starts[-1]
    depth = 1
    j = i
    while j < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        j += 1
    return text[i : j - 1].strip() if depth == 0 else None


def gsm8k_gold(answer: str) -> str | None:
    """The number after `####`, without thousands separators."""
    if "####" not in answer:
        return None
    gold = answer.rsplit("####", 1)[1].strip().replace(",", "")
    return gold or None


def _hid(prefix: str, text: str) -> str:
    return f"{prefix}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]}"


def _wrong_format(where: str, fmt: str, obj: dict) -> HoneError:
    guessed = guess_format(obj)
    hint = f"; it looks like {guessed} (use --format {guessed})" if guessed and guessed != fmt else ""
    return HoneError(f"{where}: this record is not {fmt} (keys: {', '.join(sorted(obj)) or 'none'}){hint}")


def _text(obj: dict, key: str, where: str) -> str:
    """The source field `key` as text: a number, list or null where text belongs is a corrupt record."""
    value = obj[key]
    if not isinstance(value, str):
        raise HoneError(f"{where}: field `{key}` must be a string, got {type(value).__name__}")
    return value


def _gsm8k(obj: dict, where: str) -> Task:
    if not _SIGNATURES["gsm8k"] <= set(obj):
        raise _wrong_format(where, "gsm8k", obj)
    _text(obj, "question", where)
    gold = gsm8k_gold(_text(obj, "answer", where))
    if gold is None:
        raise HoneError(f"{where}: GSM8K `answer` has no `#### N` final answer" +
                        ("; it looks like MATH (use --format math)" if "\\boxed" in str(obj["answer"]) else ""))
    q = str(obj["question"]).strip()
    return Task(id=_hid("gsm8k", q), kind="math", prompt=q, reference=gold,
                meta={"category": "gsm8k", "solution": obj["answer"]})


def _math(obj: dict, where: str) -> Task:
    if not _SIGNATURES["math"] <= set(obj):
        raise _wrong_format(where, "math", obj)
    _text(obj, "problem", where)
    gold = last_boxed(_text(obj, "solution", where))
    if gold is None:
        raise HoneError(f"{where}: MATH `solution` has no \\boxed{{...}} answer")
    p = str(obj["problem"]).strip()
    meta = {"category": str(obj.get("type", "math")), "solution": obj["solution"]}
    if "level" in obj:
        meta["level"] = obj["level"]
    return Task(id=str(obj.get("unique_id") or _hid("math", p)), kind="math", prompt=p, reference=gold, meta=meta)


CODE_INSTRUCTION = "Complete the following Python function. Reply with the whole function in a ```python block.\n\n"


def _humaneval(obj: dict, where: str) -> Task:
    if not _SIGNATURES["humaneval"] <= set(obj):
        raise _wrong_format(where, "humaneval", obj)
    for key in ("task_id", "prompt", "entry_point", "test"):
        _text(obj, key, where)
    if "def check" not in str(obj["test"]):
        raise HoneError(f"{where}: HumanEval `test` has no `def check(candidate)`")
    code_prompt = str(obj["prompt"])
    return Task(
        id=str(obj["task_id"]), kind="code",
        prompt=f"{CODE_INSTRUCTION}```python\n{code_prompt}```",
        reference=code_prompt + str(obj.get("canonical_solution", "")),
        tests=str(obj["test"]), entry_point=str(obj["entry_point"]),
        meta={"category": "humaneval", "code_prompt": code_prompt, "test_style": "humaneval"},
    )


def _mbpp(obj: dict, where: str) -> Task:
    if not _SIGNATURES["mbpp"] <= set(obj) or not isinstance(obj["test_list"], list) or not obj["test_list"]:
        raise _wrong_format(where, "mbpp", obj)
    _text(obj, "code", where)
    if not all(isinstance(t, str) for t in obj["test_list"]):
        raise HoneError(f"{where}: field `test_list` must be a list of strings")
    text = str(obj.get("text") or obj.get("prompt") or "").strip()
    if not text:
        raise HoneError(f"{where}: MBPP record has no `text` (or `prompt`) describing the task")
    m = re.search(r"assert\s+(?:not\s+)?\(?\s*(?:set\()?\s*([A-Za-z_]\w*)\s*\(", obj["test_list"][0])
    setup = str(obj.get("test_setup_code") or "")
    tests = "\n".join([setup, *obj["test_list"], *obj.get("challenge_test_list", [])]).strip() + "\n"
    return Task(
        id=f"mbpp/{obj['task_id']}", kind="code",
        prompt=f"{text}\nYour code should pass this test:\n{obj['test_list'][0]}\n"
               "Reply with the code in a ```python block.",
        reference=str(obj["code"]), tests=tests, entry_point=m.group(1) if m else None,
        meta={"category": "mbpp", "test_style": "asserts"},
    )


def _generic(obj: dict, where: str) -> Task:
    if "prompt" not in obj and "messages" not in obj:
        raise _wrong_format(where, "jsonl (needs `prompt` or `messages`)", obj)
    ref = next((obj[k] for k in ("reference", "response", "answer", "completion") if obj.get(k) is not None), None)
    meta = dict(obj.get("meta") or obj.get("metadata") or {})
    fields = {k: obj[k] for k in ("prompt", "messages", "tests", "entry_point", "options") if obj.get(k) is not None}
    kind = obj.get("kind") or ("code" if obj.get("tests") else "choice" if obj.get("options") else "open")
    basis = str(obj.get("prompt") or obj.get("messages"))
    meta.setdefault("category", str(meta.get("subject") or meta.get("category") or kind))
    try:
        return Task(id=str(obj.get("id") or _hid("task", basis)), kind=kind,
                    reference=None if ref is None else str(ref), meta=meta, **fields)
    except ValueError as e:
        msg = str(e).splitlines()
        raise HoneError(f"{where}: {msg[-1].strip() if msg else e}") from None


def _field(obj: dict, path: str, kind: type, where: str) -> Any:
    """`obj[a][b]` for path 'a.b', of type `kind`: a number where text belongs (or the reverse) is corrupt."""
    value: Any = obj
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise HoneError(f"{where}: field `{path}` is missing")
        value = value[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise HoneError(f"{where}: field `{path}` must be {'a string' if kind is str else 'an integer'}, "
                        f"got {type(value).__name__}")
    return value


_MMLU_OPTION = re.compile(r"(?m)^([A-Z])\. ")


def _options_in(prompt: str) -> list[str] | None:
    """The lettered options `A. ...` to `X. ...` at the end of a rendered MMLU prompt, before `Answer:`."""
    body = re.sub(r"\s*Answer:\s*$", "", prompt)
    marks = list(_MMLU_OPTION.finditer(body))
    while marks and marks[0].group(1) != "A":  # a question line that happens to start with a letter
        marks.pop(0)
    if len(marks) < 2 or [m.group(1) for m in marks] != list(MMLU_LETTERS[: len(marks)]):
        return None
    ends = [m.start() for m in marks[1:]] + [len(body)]
    return [body[m.end():end].strip() for m, end in zip(marks, ends)]


MMLU_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MMLU_INSTRUCTION = "Answer the following multiple choice question{about}.\n\nQuestion: {question}\n\n{options}\n\nAnswer:"


def _mmlu(obj: dict, where: str) -> Task | None:
    """MMLU as the Hugging Face `cais/mmlu` rows ship it (question, choices, answer index, subject), or as
    rendered prompts (prompt with lettered options, response, metadata.answer_index). A record whose
    `metadata.source` names another benchmark (a mixed file) is skipped and counted, not converted."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("source"), str) and meta["source"].lower() != "mmlu":
        return None
    if {"question", "choices", "answer"} <= set(obj):
        question = _field(obj, "question", str, where).strip()
        choices = obj["choices"]
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise HoneError(f"{where}: field `choices` must be a list of strings")
        index = _field(obj, "answer", int, where)
        subject = _field(obj, "subject", str, where) if "subject" in obj else ""
        about = f" about {subject.replace('_', ' ')}" if subject else ""
        options = [c.strip() for c in choices]
        letters = "\n".join(f"{MMLU_LETTERS[i]}. {c}" for i, c in enumerate(options))
        prompt = MMLU_INSTRUCTION.format(about=about, question=question, options=letters)
    elif {"prompt", "response", "metadata"} <= set(obj):
        prompt = _field(obj, "prompt", str, where)
        response = _field(obj, "response", str, where)
        index = _field(obj, "metadata.answer_index", int, where)
        subject = _field(obj, "metadata.subject", str, where) if "subject" in meta else ""
        parsed = _options_in(prompt)
        if parsed is None:
            raise HoneError(f"{where}: field `prompt` has no lettered options (A. ... B. ...) before `Answer:`")
        options = parsed
        if 0 <= index < len(options) and response.strip() != f"{MMLU_LETTERS[index]}. {options[index]}":
            raise HoneError(f"{where}: field `response` ({response[:40]!r}) is not option "
                            f"{MMLU_LETTERS[index]} (metadata.answer_index {index})")
    else:
        raise _wrong_format(where, "mmlu (question/choices/answer, or prompt/response/metadata.answer_index)", obj)
    if not 0 <= index < len(options):
        raise HoneError(f"{where}: answer index {index} is outside the {len(options)} options")
    try:
        return Task(id=_hid("mmlu", prompt), kind="choice", prompt=prompt.strip(), options=options,
                    reference=MMLU_LETTERS[index], meta={"category": subject or "mmlu", "benchmark": "mmlu"})
    except ValueError as e:
        raise HoneError(f"{where}: {str(e).splitlines()[-1].strip()}") from None


_CONVERTERS: dict[str, Callable[[dict, str], Task | None]] = {
    "gsm8k": _gsm8k, "math": _math, "humaneval": _humaneval, "mbpp": _mbpp, "mmlu": _mmlu, "jsonl": _generic,
}


# The task keys `--field` accepts for each format, and the record field each one fills; any other KEY names the
# record field itself (`metadata.answer_index` sets a nested field).
FIELD_KEYS: dict[str, dict[str, str]] = {
    "gsm8k": {"question": "question", "answer": "answer"},
    "math": {"question": "problem", "answer": "solution", "id": "unique_id"},
    "humaneval": {"id": "task_id", "question": "prompt", "answer": "canonical_solution", "tests": "test",
                  "entry_point": "entry_point"},
    "mbpp": {"id": "task_id", "question": "text", "answer": "code", "tests": "test_list"},
    "mmlu": {"question": "question", "choices": "choices", "answer": "answer", "subject": "subject",
             "answer_index": "metadata.answer_index"},
    "jsonl": {"id": "id", "question": "prompt", "answer": "reference", "reference": "reference",
              "choices": "options", "tests": "tests", "entry_point": "entry_point", "kind": "kind"},
}
TABULAR_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "csv", ".json": "json"}


def parse_fields(specs: list[str] | None, fmt: str) -> dict[str, str]:
    """`["question=q", ...]` as {record field: source column}; a malformed spec is a one-line error."""
    mapping: dict[str, str] = {}
    for spec in specs or []:
        key, sep, column = spec.partition("=")
        if not sep or not key.strip() or not column.strip():
            raise HoneError(f"--field {spec!r}: expected KEY=COLUMN (keys for {fmt}: "
                            f"{', '.join(FIELD_KEYS.get(fmt, {}))})")
        mapping[FIELD_KEYS.get(fmt, {}).get(key.strip(), key.strip())] = column.strip()
    return mapping


def _drop_nulls(value: Any) -> Any:
    """Arrow fills a column a row lacks with null; a missing field, not a null one, is what the row meant."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _tabular_rows(p: Path) -> Iterator[tuple[int, dict]]:
    """Rows of a parquet/CSV/JSON-array file or a `save_to_disk` folder, numbered from 1, via `datasets`."""
    import datasets

    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    try:
        if p.is_dir():
            data = datasets.load_from_disk(str(p))
            if isinstance(data, datasets.DatasetDict):
                if len(data) != 1:
                    raise HoneError(f"{p}: a dataset with splits {', '.join(data)}; pass one split's folder "
                                    f"(e.g. {p / next(iter(data))})")
                data = next(iter(data.values()))
        else:
            kind = TABULAR_SUFFIXES[p.suffix.lower()]
            extra = {"delimiter": "\t"} if p.suffix.lower() == ".tsv" else {}
            data = datasets.load_dataset(kind, data_files=str(p), split="train", **extra)
    except HoneError:
        raise
    except Exception as e:  # datasets/pyarrow raise many kinds; the user needs the file and the reason
        msg = str(e).strip().splitlines()
        raise HoneError(f"{p}: cannot read as {'a datasets folder' if p.is_dir() else p.suffix[1:]} "
                        f"({msg[0] if msg else type(e).__name__})") from None
    for n, row in enumerate(data, 1):
        yield n, _drop_nulls(row)


def iter_source(path: str | os.PathLike) -> tuple[Iterator[tuple[int, dict]], str]:
    """(numbered rows, how to name row n in errors) for any supported container."""
    p = Path(path)
    if p.is_dir() or (p.suffix.lower() in TABULAR_SUFFIXES and p.is_file()):
        return _tabular_rows(p), "row "
    return iter_jsonl(p), ""


def _mapped(obj: dict, fields: dict[str, str], where: str) -> dict:
    """The row with each mapped column moved to the record field it fills."""
    missing = [c for c in fields.values() if c not in obj]
    if missing:
        flag = next(f"{k}={c}" for k, c in fields.items() if c == missing[0])
        raise HoneError(f"{where}: no column `{missing[0]}` for --field {flag} "
                        f"(columns: {', '.join(sorted(obj)) or 'none'})")
    out = {k: v for k, v in obj.items() if k not in fields.values()}
    for target, column in fields.items():
        *parents, leaf = target.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = obj[column]
    return out


def import_tasks(path: str | os.PathLike, fmt: str, limit: int | None = None,
                 fields: dict[str, str] | None = None) -> list[Task]:
    """Convert every row of `path` as `fmt`; the first row that does not fit raises `file:line: why`."""
    if fmt not in _CONVERTERS:
        raise HoneError(f"unknown format {fmt!r} (use one of: {', '.join(FORMATS)})")
    p = Path(path)
    rows, unit = iter_source(p)
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    skipped: Counter[str] = Counter()
    for n, obj in rows:
        where = f"{p}:{unit}{n}"
        record = _mapped(obj, fields or {}, where)
        task = _CONVERTERS[fmt](record, where)
        if task is None:  # a record of another benchmark in a mixed file
            skipped[str(record["metadata"]["source"])] += 1
            continue
        if task.id in seen:
            raise HoneError(f"{where}: duplicate item (same id {task.id!r} as {unit or 'line '}{seen[task.id]})")
        seen[task.id] = n
        task.meta.setdefault("source", f"{p.stem}:{n}")
        tasks.append(task)
        if limit and len(tasks) >= limit:
            break
    other = ", ".join(f"{k} {v}" for k, v in sorted(skipped.items()))
    if not tasks:
        raise HoneError(f"{p}: no {fmt} records" + (f" (only other sources: {other})" if skipped else
                                                     " (the file is empty)"))
    if skipped:
        from hone.progress import console

        console.print(f"[bold yellow]warning:[/] {p}: skipped {sum(skipped.values())} records whose "
                      f"metadata.source is another benchmark ({other})", highlight=False, soft_wrap=True)
    return tasks


def import_to(path: str | os.PathLike, fmt: str, out: str | os.PathLike, *, limit: int | None = None,
              fields: dict[str, str] | None = None, overwrite: bool = False) -> list[Task]:
    """`hone tasks import`: convert `path` and write `out`, refusing to replace a file it did not make."""
    from hone.records import write_records
    from hone.runs import Stage, manifest_for

    stage = Stage(manifest_for(out), "tasks-import", {"source": path},
                  {"format": fmt, "limit": limit, **({"fields": fields} if fields else {})})
    tasks = import_tasks(path, fmt, limit=limit, fields=fields)
    stage.start([out], restart=True, overwrite=overwrite)
    write_records(out, tasks)
    stage.finish({"tasks": out}, {"tasks": len(tasks)})
    return tasks
