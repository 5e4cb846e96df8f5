"""`hone compare A B`: two evaluations of the same items, paired item by item (hone.bench.stats).

An unpaired test of two accuracies throws away that both models answered the same items; pairing them (the
difference with Newcombe's CI, McNemar's exact test) is what tells whether B is really better than A. A side is
any of:

- a Hone bench folder (`bench.json` + `<suite>/verdicts.jsonl`), e.g. the output of `hone bench`;
- a loop round (`run/round-2`, or `run:2`), whose bench folder is `round-2/bench`;
- a loop arm or run folder (`demo-run/verified`): its final model, the last promoted round (`run:last`);
- a Hone verdict file (`verdicts.jsonl`; the suite is its folder's name, or the file's stem);
- lm-evaluation-harness `--log_samples` output: a `samples_<task>_<date>.jsonl` file, or a folder holding them
  (one suite per task and filter, correct where the `acc` or `exact_match` value is 1).

Items are joined by id within suites of the same name (two sides of one suite each are paired whatever their
names). Different item sets, or the same id asked with a different prompt, are refused: a paired test of
different questions means nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hone.bench.stats import paired_compare, wilson_interval
from hone.errors import HoneError

EXAMPLES = 3
LM_EVAL_METRICS = ("acc", "exact_match")  # lm-eval's per-sample 0/1 correctness, in order of preference


@dataclass
class SuiteItems:
    """One suite as one side answered it: correctness per item, and what is known of the prompts."""

    correct: dict[str, bool]
    answers: dict[str, str] = field(default_factory=dict)  # item -> the model's answer, for examples
    prompts: dict[str, str] | None = None  # item -> the prompt (or its hash); None where unknown
    fingerprint: str | None = None  # the suite file's sha256 where the prompts themselves are not at hand
    metric: str = "verdict"


@dataclass
class Side:
    label: str
    suites: dict[str, SuiteItems]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    from hone.records import iter_jsonl

    return [obj for _, obj in iter_jsonl(path)]


def final_round(arm_dir: Path) -> int:
    """The round whose model a loop ends with: the last promoted one in its summary (hone.round.LoopSummary; round 0
    when the gate refused every candidate)."""
    from hone.round import read_summary

    summary = read_summary(arm_dir)
    if summary is None:
        raise HoneError(f"{arm_dir / 'summary.json'}: not a readable loop summary (name a round: {arm_dir}:N)")
    return summary.last_promoted().round


def _verdict_suite(verdict_path: Path, tasks_path: Path | None = None, fingerprint: str | None = None) -> SuiteItems:
    """Correctness of sample 0 of each graded item (pairwise win/tie/loss verdicts are not correctness)."""
    from hone.records import Generation, Task, Verdict, read_records

    verdicts = [v for v in read_records(verdict_path, Verdict) if v.sample == 0 and v.verdict in
                ("pass", "fail", "error")]
    prompts = None
    if tasks_path is not None and tasks_path.is_file():
        tasks = read_records(tasks_path, Task)
        open_ids = {t.id for t in tasks if t.kind == "open"}
        verdicts = [v for v in verdicts if v.id not in open_ids]
        prompts = {t.id: json.dumps(t.chat()) for t in tasks}
    gens_path = verdict_path.parent / "generations.jsonl"
    answers = ({g.id: g.output for g in read_records(gens_path, Generation) if g.sample == 0}
               if gens_path.is_file() else {})
    return SuiteItems(correct={v.id: v.verdict == "pass" for v in verdicts}, answers=answers, prompts=prompts,
                      fingerprint=fingerprint)


def _bench_side(bench_dir: Path, label: str) -> Side:
    from hone.bench.report import BenchReport

    try:
        report = BenchReport.model_validate_json((bench_dir / "bench.json").read_text())
    except (OSError, ValueError) as e:
        raise HoneError(f"{bench_dir / 'bench.json'}: not readable ({str(e).splitlines()[0]})") from None
    suites = {}
    for name, entry in report.suites.items():
        verdicts = bench_dir / name / "verdicts.jsonl"
        if not verdicts.is_file():
            raise HoneError(f"{verdicts}: missing (bench.json lists suite {name!r})")
        suites[name] = _verdict_suite(verdicts, Path(entry.path) if entry.path else None, entry.sha256)
    return Side(label, suites)


_SAMPLES = re.compile(r"^samples_(?P<task>.+)_(?P<date>[^_]+)\.jsonl$")


def _lm_eval_answer(row: dict[str, Any]) -> str:
    """What the model answered: its (filtered) text, or for a multiple-choice task the option it ranked first.

    A multiple-choice sample logs one `[log-likelihood, is_greedy]` pair per option (lm-eval writes them as
    strings) and each option's continuation in `arguments` (`{"gen_args_i": {"arg_0": context, "arg_1": option}}`,
    or a list of `[context, option]`); lm-eval's `acc` counts it right when the gold option has the highest.
    """
    resps = row.get("filtered_resps") or row.get("resps") or [""]
    if len(resps) > 1 and all(isinstance(r, list) and len(r) == 2 for r in resps):
        scores = [float(r[0]) for r in resps]
        best = max(range(len(scores)), key=scores.__getitem__)
        args = row.get("arguments")
        option = (args.get(f"gen_args_{best}", {}).get("arg_1") if isinstance(args, dict)
                  else args[best][1] if isinstance(args, list) and len(args) > best else None)
        return f"{str(option).strip() if option is not None else f'option {best}'} (log-lik {scores[best]:.2f})"
    return resps[0] if isinstance(resps[0], str) else json.dumps(resps[0], ensure_ascii=False)


def _lm_eval_suites(path: Path) -> dict[str, SuiteItems]:
    """One lm-eval samples file: a suite per filter (`task` alone when the task has one filter)."""
    m = _SAMPLES.match(path.name)
    task = m.group("task") if m else path.stem
    rows = _jsonl(path)
    filters = sorted({str(r.get("filter", "none")) for r in rows})
    suites: dict[str, SuiteItems] = {}
    for n, row in enumerate(rows, 1):
        if "doc_id" not in row:
            raise HoneError(f"{path}:{n}: not an lm-eval sample (no `doc_id`)")
        listed = [k for k in row.get("metrics", []) if k in row]
        metric = next((k for k in LM_EVAL_METRICS if k in row), listed[0] if listed else None)
        if metric is None:
            raise HoneError(f"{path}:{n}: no per-sample metric (looked for {', '.join(LM_EVAL_METRICS)})")
        name = task if len(filters) == 1 else f"{task}/{row.get('filter', 'none')}"
        suite = suites.setdefault(name, SuiteItems(correct={}, prompts={}, metric=metric))
        item = str(row["doc_id"])
        if item in suite.correct:
            raise HoneError(f"{path}:{n}: doc_id {item} appears twice for filter {row.get('filter')!r}")
        suite.correct[item] = float(row[metric]) >= 1.0
        suite.prompts[item] = f"{row.get('doc_hash')}:{row.get('prompt_hash') or json.dumps(row.get('arguments'))}"
        suite.answers[item] = _lm_eval_answer(row)
    if not suites:
        raise HoneError(f"{path}: no samples")
    return suites


def _lm_eval_side(files: list[Path], label: str) -> Side:
    suites: dict[str, SuiteItems] = {}
    newest: dict[str, str] = {}
    for f in sorted(files):
        m = _SAMPLES.match(f.name)
        task, date = (m.group("task"), m.group("date")) if m else (f.stem, "")
        if task in newest and newest[task] >= date:
            continue  # an older run of the same task in the same folder
        newest[task] = date
        suites.update(_lm_eval_suites(f))
    return Side(label, suites)


def load_side(spec: str) -> Side:
    """Read one side from any of the layouts in the module docstring."""
    path, round_ = Path(spec), None
    head, sep, tail = spec.rpartition(":")
    if sep and head and (tail.isdigit() or tail == "last") and Path(head).is_dir():
        path, round_ = Path(head), tail
    if not path.exists():
        raise HoneError(f"{spec}: no such file or folder")
    if path.is_file():
        first = next(iter(_jsonl(path)), {})
        if "doc_id" in first:
            return Side(spec, _lm_eval_suites(path))
        if {"id", "verdict", "judge"} <= set(first):
            name = path.parent.name if path.name == "verdicts.jsonl" else path.stem
            return Side(spec, {name: _verdict_suite(path)})
        raise HoneError(f"{path}: neither Hone verdicts nor lm-eval samples (keys: {', '.join(sorted(first))})")
    if round_ is None and (path / "bench.json").is_file():
        return _bench_side(path, spec)
    if round_ is None and (path / "bench" / "bench.json").is_file():
        return _bench_side(path / "bench", spec)
    if (path / "summary.json").is_file():
        arms = json.loads((path / "summary.json").read_text()).get("arms")
        if round_ is None and arms:
            raise HoneError(f"{path}: a run of {len(arms)} arms; compare two of them, e.g. "
                            + " ".join(str(path / a) for a in list(arms)[:2]))
        number = final_round(path) if round_ in (None, "last") else int(round_)
        bench_dir = path / f"round-{number}" / "bench"
        if not (bench_dir / "bench.json").is_file():
            raise HoneError(f"{bench_dir}: no bench.json (has round {number} finished?)")
        return _bench_side(bench_dir, f"{path}:{number}")
    samples = sorted(path.rglob("samples_*.jsonl"))
    if samples:
        return _lm_eval_side(samples, spec)
    raise HoneError(f"{path}: no bench.json, bench/bench.json, summary.json or lm-eval samples_*.jsonl in it")


def _pairs(a: Side, b: Side) -> list[tuple[str, SuiteItems, SuiteItems]]:
    common = [s for s in a.suites if s in b.suites]
    if common:
        return [(s, a.suites[s], b.suites[s]) for s in common]
    if len(a.suites) == 1 and len(b.suites) == 1:
        (sa, ia), (sb, ib) = next(iter(a.suites.items())), next(iter(b.suites.items()))
        return [(sa if sa == sb else f"{sa} vs {sb}", ia, ib)]
    raise HoneError(f"no suite in common: {a.label} has {', '.join(a.suites) or 'none'}; "
                    f"{b.label} has {', '.join(b.suites) or 'none'}")


def _check_same_items(name: str, a: SuiteItems, b: SuiteItems, labels: tuple[str, str]) -> bool:
    """Refuse different item sets or prompts; return whether the prompts could be checked."""
    only_a, only_b = sorted(set(a.correct) - set(b.correct)), sorted(set(b.correct) - set(a.correct))
    if only_a or only_b:
        raise HoneError(f"suite {name}: the two sides answered different items ({len(only_a)} only in {labels[0]}"
                        f"{', e.g. ' + only_a[0] if only_a else ''}; {len(only_b)} only in {labels[1]}"
                        f"{', e.g. ' + only_b[0] if only_b else ''})")
    if a.prompts is not None and b.prompts is not None:
        differ = [i for i in sorted(a.correct) if a.prompts.get(i) != b.prompts.get(i)]
        if differ:
            raise HoneError(f"suite {name}: {len(differ)} items were asked with different prompts "
                            f"(e.g. {differ[0]}); the comparison would not be paired")
        return True
    if a.fingerprint and b.fingerprint:
        if a.fingerprint != b.fingerprint:
            raise HoneError(f"suite {name}: the suite files differ (sha256 {a.fingerprint[:12]} vs "
                            f"{b.fingerprint[:12]}) and their tasks are not at hand to compare prompts")
        return True
    return False


def _example(item: str, a: SuiteItems, b: SuiteItems, width: int = 100) -> dict[str, str]:
    def cut(text: str | None) -> str:
        text = re.sub(r"\s+", " ", text or "").strip()
        return text if len(text) <= width else "…" + text[-width:]
    return {"id": item, "a": cut(a.answers.get(item)), "b": cut(b.answers.get(item))}


def compare(a: Side, b: Side) -> dict[str, Any]:
    """Per suite: each side's accuracy (Wilson 95%), B − A paired with its CI, McNemar's p, the discordant items."""
    suites = {}
    for name, ia, ib in _pairs(a, b):
        checked = _check_same_items(name, ia, ib, (a.label, b.label))
        paired = paired_compare(ia.correct, ib.correct)
        n = paired["n"]
        k_a, k_b = paired["both_correct"] + paired["regressed"], paired["both_correct"] + paired["improved"]
        # Examples in A's file order, not sorted as text (lm-eval's doc ids are numbers: 2 before 10).
        improved = [i for i in ia.correct if ib.correct[i] and not ia.correct[i]]
        regressed = [i for i in ia.correct if ia.correct[i] and not ib.correct[i]]
        suites[name] = {
            **{k: paired[k] for k in ("n", "difference", "ci95", "mcnemar_p", "improved", "regressed",
                                      "both_correct", "both_wrong")},
            "a": {"correct": k_a, "accuracy": paired["before_accuracy"], "ci95": list(wilson_interval(k_a, n))},
            "b": {"correct": k_b, "accuracy": paired["after_accuracy"], "ci95": list(wilson_interval(k_b, n))},
            "metric": ia.metric if ia.metric == ib.metric else f"{ia.metric} / {ib.metric}",
            "prompts_checked": checked,
            "examples": {"improved": [_example(i, ia, ib) for i in improved[:EXAMPLES]],
                         "regressed": [_example(i, ia, ib) for i in regressed[:EXAMPLES]]},
        }
    return {"a": a.label, "b": b.label, "suites": suites}


def arms_sentence(c: dict[str, Any]) -> str:
    """A demo's verified vs control figures (summary.json `verified_vs_control`) in one sentence."""
    return (f"verified (round {c['verified_round']}) vs control (round {c['control_round']}), final models on the "
            f"same {c['n']} items: {100 * c['difference']:+.1f} pts [{100 * c['ci95'][0]:+.1f}, "
            f"{100 * c['ci95'][1]:+.1f}], McNemar p={c['mcnemar_p']:.2g}")


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _ci(ci: list[float], sign: str = "") -> str:
    return f"[{100 * ci[0]:{sign}.1f}, {100 * ci[1]:{sign}.1f}]"


def render_text(result: dict[str, Any]) -> str:
    lines = [f"A = {result['a']}", f"B = {result['b']}"]
    for name, s in result["suites"].items():
        lines += [f"\nsuite {name}: {s['n']} items paired ({s['metric']})"
                  + ("" if s["prompts_checked"] else "; prompts not recorded, not checked"),
                  f"  A: {_pct(s['a']['accuracy'])} {_ci(s['a']['ci95'])}  ({s['a']['correct']}/{s['n']})",
                  f"  B: {_pct(s['b']['accuracy'])} {_ci(s['b']['ci95'])}  ({s['b']['correct']}/{s['n']})"]
        if s["n"]:
            lines.append(f"  B − A: {100 * s['difference']:+.1f} pts {_ci(s['ci95'], '+')} (95% CI, paired), "
                         f"McNemar p={s['mcnemar_p']:.2g}")
        lines.append(f"  improved {s['improved']}, regressed {s['regressed']} (both right {s['both_correct']}, "
                     f"both wrong {s['both_wrong']})")
        for kind in ("improved", "regressed"):
            for ex in s["examples"][kind]:
                lines.append(f"    {kind}: {ex['id']}  A: {ex['a'] or '—'}  B: {ex['b'] or '—'}")
    return "\n".join(lines)


def render_html(result: dict[str, Any], out_path: Path) -> Path:
    """The comparison as a self-contained page in the run report's style."""
    from hone.report.html import escape, page, table

    body = [f"<h1>{escape(result['b'])} vs {escape(result['a'])}</h1><p class=sub>paired on the same items: "
            "accuracy CIs are Wilson 95%; B − A is the paired difference (95% CI, exact McNemar test)</p>"]
    for name, s in result["suites"].items():
        body.append(f"<h2>{escape(name)}</h2>")
        diff = (f"{100 * s['difference']:+.1f} pts {_ci(s['ci95'], '+')}" if s["n"] else "—")
        body.append(table(["", "accuracy", "95% CI", "correct"],
                          [["A " + result["a"], _pct(s["a"]["accuracy"]), _ci(s["a"]["ci95"]), s["a"]["correct"]],
                           ["B " + result["b"], _pct(s["b"]["accuracy"]), _ci(s["b"]["ci95"]), s["b"]["correct"]]],
                          {1, 3}))
        body.append(table(["n", "B − A", "McNemar p", "improved", "regressed", "both right", "both wrong"],
                          [[s["n"], diff, f"{s['mcnemar_p']:.2g}", s["improved"], s["regressed"],
                            s["both_correct"], s["both_wrong"]]], {0, 1, 2, 3, 4, 5, 6}))
        rows = [[kind, ex["id"], ex["a"], ex["b"]] for kind in ("improved", "regressed")
                for ex in s["examples"][kind]]
        if rows:
            body.append(table(["", "item", "A answered", "B answered"], rows))
    return page(f"compare: {result['b']} vs {result['a']}", body, out_path)
