"""bench.json as a Markdown report a person reads: one table per question, every number with its interval."""

from __future__ import annotations

from typing import Any


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _ci(ci: list[float] | None) -> str:
    return "–" if not ci else f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}%"


def _signed(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.1f} pts"


def render(bench: dict[str, Any]) -> str:
    lines = [f"# Benchmark of `{bench['model']}`", ""]
    params = bench["params"]
    lines += [f"Sampling: temperature {params['temperature']}, {params['n']} sample(s) per task, "
              f"max {params['max_new_tokens']} new tokens. Sandbox: {bench.get('sandbox') or 'not used'}.", ""]
    lines += ["## Accuracy (ground truth)", "",
              "| suite | category | tasks | graded | pass | fail | error | timeouts | accuracy | 95% CI |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, suite in bench["suites"].items():
        rows = [("all", suite["accuracy"])] + list(suite["categories"].items())
        if len(suite["categories"]) == 1:
            rows = rows[:1]
        for category, b in rows:
            lines.append(f"| {name} | {category} | {b['tasks']} | {b['graded_tasks']} | {b['pass']} | {b['fail']} | "
                         f"{b['error']} | {b['timeouts']} | {_pct(b['accuracy'])} | {_ci(b['ci95'])} |")
    pass_k = [(n, s["accuracy"]["pass_at_k"]) for n, s in bench["suites"].items() if s["accuracy"].get("pass_at_k")]
    if pass_k:
        lines += ["", "| suite | " + " | ".join(f"pass@{k}" for k in pass_k[0][1]) + " |",
                  "|---|" + "---:|" * len(pass_k[0][1])]
        lines += [f"| {n} | " + " | ".join(_pct(v) for v in p.values()) + " |" for n, p in pass_k]
    if bench.get("reference"):
        lines += ["", f"## Against the reference `{bench['reference']}`", "",
                  "| suite | compared | ours | reference | win | tie | loss | not compared | accuracy Δ (95% CI) | "
                  "McNemar p |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
        for name, suite in bench["suites"].items():
            c = suite.get("comparison")
            if not c:
                continue
            gt = c["ground_truth"]
            p = gt["paired"]
            lines.append(f"| {name} | {p['n']} | {_pct(p['after_accuracy'])} | {_pct(p['before_accuracy'])} | "
                         f"{gt['win']} | {gt['tie']} | {gt['loss']} | "
                         f"{len(gt['not_compared']) + len(gt['missing_in_reference'])} | "
                         f"{_signed(p['difference'])} ({_signed(p['ci95'][0])} to {_signed(p['ci95'][1])}) | "
                         f"{p['mcnemar_p']:.3g} |")
            o = c["open"]
            if o["tasks"]:
                how = (f"win {o['win']}, tie {o['tie']}, loss {o['loss']}, error {o['error']} "
                       f"(pairwise judge `{o['judge']}`)") if o["judge"] else "not compared (no pairwise judge)"
                lines.append(f"| {name} (open tasks: {o['tasks']}) | | | | | | | | {how} | |")
        lines += ["", "On tasks with ground truth: both right or both wrong is a tie; a task where either side "
                  "is an error is not compared."]
    gaps = [(n, s["scorer_gap"]) for n, s in bench["suites"].items() if s.get("scorer_gap")]
    if gaps:
        lines += ["", "## Scorer gap (the verifier against a strict second reading)", "",
                  "| suite | answers read by both | disagree | verifier passed, strict failed | strict passed, "
                  "verifier failed | gap |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {n} | {g['answers']} | {g['disagree']} | {g['verifier_only']} | {g['strict_only']} | "
                  f"{_pct(g['share'])} |" for n, g in gaps]
        lines += ["", "Examples of each disagreement are in failures.jsonl (outcome \"scorer gap\")."]
    checks = bench.get("contamination")
    lines += ["", "## Suite checks", ""]
    if checks:
        for name, c in checks["suites"].items():
            flagged = ", ".join(f"`{x['id']}` ({100 * x['overlap']:.0f}%)" for x in c["contaminated"][:20])
            lines.append(f"- {name}: {len(c['contaminated'])} of {c['tasks']} tasks contaminated by the training data "
                         f"({checks['ngram']}-gram overlap ≥ {100 * checks['flag_at']:.0f}%)"
                         + (f": {flagged}" if flagged else "") + f"; {len(c['overlapping'])} overlap partly.")
    else:
        lines.append("- no training data given (--train-data): contamination not checked.")
    for name, suite in bench["suites"].items():
        for w in suite.get("warnings", [])[:10]:
            lines.append(f"- {name}: {w}")
    return "\n".join(lines) + "\n"
