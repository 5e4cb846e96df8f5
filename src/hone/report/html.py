"""`report.html`: one self-contained page (inline SVG plots, inline CSS, no script, no network) of a run.

The first screen holds the verdict per arm (final model, uplift over the starting model with its CI and
McNemar p) next to the accuracy and uplift plots; below come the rounds, win/tie/loss, per-category accuracy,
training data, judge spend, merge verification and failure clusters. Every figure comes from summary.json and
the files the run wrote (bench.json, merge_report.json, failure_clusters.json): nothing is recomputed here.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from hone.atomic import write_text_atomic
from hone.judge.cache import judge_spend
from hone.report.plots import (accuracy_figure, arm_style, last_candidate, no_candidate_reason, to_svg,
                               uplift_figure, win_tie_loss_figure)
from hone.round import DemoSummary, LoopSummary, RoundLayout
from hone.runs import read_manifest

CSP = "default-src 'none'; style-src 'unsafe-inline'"
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:22px;margin:4px 0 2px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#555;margin:0 0 12px}.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:12px}
.card{flex:1 1 260px;background:#fff;border:1px solid #ddd;border-left:6px solid var(--c);border-radius:6px;padding:10px 14px}
.card h3{margin:0 0 4px;font-size:15px}.big{font-size:24px;font-weight:650}.good{color:#1a7f37}.bad{color:#b42318}
.flat{color:#555}.small{font-size:12px;color:#555}.plots{display:flex;gap:12px;flex-wrap:wrap}
.plot{background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px;flex:1 1 460px}
.plot svg{width:100%;max-width:760px;height:auto;display:block;margin:0 auto}
table{border-collapse:collapse;background:#fff;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f0f0f0}
td.n{text-align:right;font-variant-numeric:tabular-nums}code{font-size:12px}
"""


def escape(x: Any) -> str:
    return html.escape(str(x))


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _ci(ci: list[float] | None) -> str:
    return "" if not ci else f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def table(head: list[str], rows: list[list[Any]], numeric: set[int] = frozenset()) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td class=n>{escape(c)}</td>" if i in numeric else f"<td>{escape(c)}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def verdict(summary: LoopSummary) -> dict[str, Any]:
    """The arm's outcome in a sentence: the model it ends with and what it gained over round 0, per suite."""
    last = next((r for r in reversed(summary.rounds) if r.trained and r.promoted), None)
    first = summary.rounds[0].suites
    if last is None:
        tried = [r for r in summary.rounds if r.trained]
        why = no_candidate_reason(summary)
        if tried:
            why = "every candidate was refused by the gate (" + "; ".join(
                f"round {r.round} {s} {_pts(u.diff)} [{_pts(u.ci[0])}, {_pts(u.ci[1])}]"
                for r in tried for s, u in sorted((r.uplift_vs_round0 or {}).items())) + ")"
        return {"tone": "flat", "headline": "unchanged", "detail": f"no round promoted a new model: {why}",
                "suites": {s: {"accuracy": v, "uplift": None} for s, v in first.items()}}
    suites = {}
    tones = set()
    for s, acc in last.suites.items():
        up = (last.uplift_vs_round0 or {}).get(s)
        suites[s] = {"accuracy": acc, "uplift": up, "before": first.get(s)}
        if up:
            tones.add("good" if up.ci[0] > 0 else "bad" if up.ci[1] < 0 else "flat")
    tone = "good" if tones == {"good"} else "bad" if "bad" in tones else "flat"
    headline = {"good": "improved", "bad": "regressed", "flat": "no significant change"}[tone]
    return {"tone": tone, "headline": headline, "suites": suites, "detail": f"round {last.round}: {last.reason}"}


def _card(i: int, arm: str, summary: LoopSummary) -> str:
    colour, _ = arm_style(i)
    v = verdict(summary)
    parts = [f"<div class=card style='--c:{colour}'><h3>{escape(arm)}: <span class={v['tone']}>{escape(v['headline'])}"
             "</span></h3>"]
    for s, x in sorted(v["suites"].items()):
        up, acc = x["uplift"], x["accuracy"]
        if up:
            parts.append(f"<div class='big {v['tone']}'>{_pts(up.diff)} pts <span class=small>{escape(s)}</span></div>"
                         f"<div>95% CI [{_pts(up.ci[0])}, {_pts(up.ci[1])}], McNemar p={up.p_value:.2g}, "
                         f"n={up.n}</div><div class=small>{_pct(x['before'].accuracy)} → "
                         f"{_pct(acc.accuracy)} {_ci(acc.ci)}</div>")
        else:
            parts.append(f"<div class='big flat'>{_pct(acc.accuracy)} <span class=small>{escape(s)} "
                         f"{_ci(acc.ci)}</span></div>")
    parts.append(f"<div class=small>{escape(v['detail'])}</div>")
    if summary.description:
        parts.append(f"<div class=small>{escape(summary.description)}</div>")
    return "".join(parts) + "</div>"



def _compared(c: dict[str, Any] | None) -> str:
    """A demo's verified vs control final models on the same items: the comparison that matters most."""
    if not c:
        return ""
    from hone.compare import arms_sentence

    tone = "good" if c["ci95"][0] > 0 else "bad" if c["ci95"][1] < 0 else "flat"
    return (f"<div class=card style='--c:#444;margin-bottom:12px'><h3>What verification buys</h3>"
            f"<div class='big {tone}'>{_pts(c['difference'])} pts</div><div>{escape(arms_sentence(c))}</div>"
            f"<div class=small>{_pct(c['before_accuracy'])} (control) → {_pct(c['after_accuracy'])} (verified), "
            f"improved {c['improved']}, regressed {c['regressed']}; <code>hone compare</code> shows the items</div>"
            "</div>")

def _rounds(arms: dict[str, LoopSummary]) -> str:
    rows = []
    for arm, s in arms.items():
        for r in s.rounds:
            for suite, acc in sorted(r.suites.items()):
                up = (r.uplift_vs_round0 or {}).get(suite)
                gate = ("starting model" if r.round == 0 else "promoted" if r.trained and r.promoted else
                        "refused" if r.trained else "no candidate")
                rows.append([arm, r.round, suite, f"{_pct(acc.accuracy)} {_ci(acc.ci)}", acc.n,
                             f"{_pts(up.diff)} [{_pts(up.ci[0])}, {_pts(up.ci[1])}]" if up else "—",
                             f"{up.p_value:.3g}" if up else "—", gate, r.reason])
    return table(["arm", "round", "suite", "accuracy (95% CI)", "n", "uplift vs round 0, pts (95% CI)",
                   "McNemar p", "gate", "why"], rows, {1, 4})


def _win_tie_loss(arms: dict[str, LoopSummary]) -> str:
    rows, notes = [], []
    for arm, s in arms.items():
        last = last_candidate(s)
        if last is None:
            notes.append(f"<p><b>{escape(arm)}</b> has no win/tie/loss: {escape(no_candidate_reason(s))}.</p>")
            continue
        for suite, cats in sorted(last.win_tie_loss.items()):
            for cat, c in sorted(cats.items()):
                rows.append([arm, last.round, suite, cat, c.get("win", 0), c.get("tie", 0), c.get("loss", 0)])
    return "".join(notes) + (table(["arm", "candidate of round", "suite", "category", "win", "tie", "loss"], rows,
                                     {1, 4, 5, 6}) if rows else "")


def _categories(arms: dict[str, LoopSummary], dirs: dict[str, Path]) -> str:
    rows = []
    for arm, s in arms.items():
        for r in s.rounds:
            if r.round and not r.candidate:
                continue  # nothing benchmarked this round
            bench = RoundLayout(dirs[arm], r.round).bench_report()
            for suite, entry in sorted((bench.suites if bench else {}).items()):
                for cat, acc in sorted(entry.categories.items()):
                    rows.append([arm, r.round, suite, cat, f"{_pct(acc.accuracy)} {_ci(acc.ci95)}", acc.graded_tasks])
    if not rows:
        return "<p>No benchmark files found next to the summary.</p>"
    return table(["arm", "round", "suite", "category", "accuracy (95% CI)", "n"], rows, {1, 5})


def _data(arms: dict[str, LoopSummary]) -> str:
    rows = []
    for arm, s in arms.items():
        for r in s.rounds[1:]:
            t, d, c = r.train_prompts, r.data, r.critique
            rows.append([arm, r.round, f"{t.solved}/{t.tasks}" if t else "—", t.samples if t else 0,
                         d.source if d else "", d.built if d else 0, f"{c.accepted}/{c.attempts}" if c else "—",
                         d.duplicates if d else 0, d.contaminated if d else 0, d.replay_added if d else 0,
                         d.rows if d else 0])
    return table(["arm", "round", "prompts with a verified answer", "samples", "rows from", "rows built",
                   "critique fixes accepted", "duplicates dropped", "held-out overlap dropped", "replay added",
                   "training rows"], rows, {1, 3, 5, 7, 8, 9, 10})


def _scorer_gap(arms: dict[str, LoopSummary]) -> str:
    from hone.report.status import GAP_HEAD, gap_rows

    rows = [[arm, *row] for arm, s in arms.items() for row in gap_rows(s)]
    if not rows:
        return "<p>No answer had a strict second reading (code or open tasks only).</p>"
    return table(["arm", *GAP_HEAD], rows, {1, 3, 4}) + (
        "<p class=small>The verifier against an independent strict reading (one number after the final-answer "
        "marker or at the end; one leading letter). A gap that rises round after round on the samples a round "
        "trains on is the first sign of a model learning its grader; bench's failures.jsonl has examples "
        "(outcome \"scorer gap\").</p>")


def _cache_hits(round_dir: Path) -> int | None:
    """Judge answers a round took from the cache, from its judge stages' manifests (None: no LLM judge ran)."""
    hits = None
    for m in sorted(round_dir.glob("*.manifest.json")):
        calls = ((read_manifest(m.with_name(m.name.removesuffix(".manifest.json"))) or {}).get("counts") or {}).get(
            "judge_calls")
        if isinstance(calls, dict) and "cached" in calls:
            hits = (hits or 0) + int(calls["cached"])
    return hits


def _judge(arms: dict[str, LoopSummary], dirs: dict[str, Path]) -> str:
    rows = []
    for arm, s in arms.items():
        for r in s.rounds[1:]:
            j = r.judge
            hits = _cache_hits(RoundLayout(dirs[arm], r.round).dir)
            rows.append([arm, r.round, j.name if j else "", j.calls if j else 0, f"${j.cost_usd if j else 0:.4f}",
                         "—" if hits is None else f"{hits} answers from the cache"])
        ledger = judge_spend(dirs[arm])
        rows.append([arm, "all", "ledger (paid calls)", ledger.get("calls"), f"${ledger.get('usd') or 0:.4f}",
                     f"{ledger.get('cached_answers', 0)} answers stored"])
    return table(["arm", "round", "judge", "calls", "cost", "cache"], rows, {3}) + \
        "<p class=small>The verifier (math-verify, sandboxed tests) costs nothing; an LLM judge's answers are " \
        "cached by model, template and prompt, so a resumed run never pays twice.</p>"


def _merges(arms: dict[str, LoopSummary], dirs: dict[str, Path]) -> str:
    rows = []
    for arm, s in arms.items():
        for r in s.rounds[1:]:
            rep = RoundLayout(dirs[arm], r.round).merge_report() if r.candidate else None
            if rep is None:
                continue
            f = rep.verification.logits if rep.verification else None
            rows.append([arm, r.round, rep.status, f"{f.max_abs_logit_diff.value:.2e}" if f else "—",
                         f"{f.mean_kl.value:.2e}" if f else "—", f"{f.top1_agreement.value:.4f}" if f else "—",
                         f.greedy_identical.value if f else "—"])
    if not rows:
        return "<p>No merge was made (no round trained a candidate).</p>"
    return table(["arm", "round", "status", "max |Δlogit|", "mean KL", "top-1 agreement", "greedy identical"],
                  rows, {1}) + "<p class=small>Merged weights against the adapter on its exact base, as trained.</p>"


def _clusters(arms: dict[str, LoopSummary], dirs: dict[str, Path]) -> str:
    from hone.judge.clusters import read_clusters

    out = []
    for arm in arms:
        c = read_clusters(dirs[arm])
        if c is None:
            out.append(f"<p><b>{escape(arm)}</b>: no failure clusters written.</p>")
            continue
        if not c["clusters"]:
            out.append(f"<p><b>{escape(arm)}</b>: the final model failed no held-out item.</p>")
            continue
        rows = [[k["cluster"], k["size"], f"{100 * k['share']:.0f}%", ", ".join(k["top_terms"]) or "—",
                 ", ".join(f"{a} {b}" for a, b in k["categories"].items()),
                 " | ".join(f"{x['prompt']} → {x['output']} ({x['reason']})" for x in k["examples"][:2])]
                for k in c["clusters"]]
        out.append(f"<p><b>{escape(arm)}</b>: {c['items']} held-out failures of the final model "
                   f"({escape(c.get('source'))}), "
                   f"{escape(c['method'])}, k={c.get('k_used', c['k'])}, seed {c['seed']}.</p>"
                   + table(["#", "items", "share", "distinctive terms", "categories", "nearest examples"], rows,
                            {0, 1, 2}))
    return "".join(out)


def render_html(arms: dict[str, LoopSummary], dirs: dict[str, Path], out_path: Path, title: str,
                demo: DemoSummary | None = None) -> Path:
    """Write the self-contained report page; `dirs` maps each arm to its run directory; `demo` is the demo's
    summary when the run is a demo (its time, seed and starting model)."""
    sub = [f"{len(arms)} arm{'s' if len(arms) > 1 else ''}",
           f"{max(len(s.rounds) - 1 for s in arms.values())} rounds"]
    if demo and demo.seconds:
        sub.append(f"{demo.seconds / 60:.1f} min")
    if demo:
        sub.append(f"seed {demo.seed}")
    figs = [to_svg(accuracy_figure(arms))]
    up = uplift_figure(arms)
    if up is not None:
        figs.append(to_svg(up))
    wtl = win_tie_loss_figure(arms)
    body = [
        f"<h1>{escape(title)}</h1><p class=sub>{escape(' · '.join(sub))} · accuracy CIs are Wilson 95%; uplift is "
        "the paired difference on the same held-out items (95% CI, exact McNemar test)</p>",
        _compared(demo.verified_vs_control if demo else None),
        "<div class=cards>" + "".join(_card(i, a, s) for i, (a, s) in enumerate(arms.items())) + "</div>",
        "<div class=plots>" + "".join(f"<div class=plot>{f}</div>" for f in figs) + "</div>",
        "<h2>Rounds</h2>", _rounds(arms),
        "<h2>Win / tie / loss against the starting model</h2>",
        (f"<div class=plot>{to_svg(wtl)}</div>" if wtl is not None else ""), _win_tie_loss(arms),
        "<h2>Accuracy per category</h2>", _categories(arms, dirs),
        "<h2>Training data</h2>", _data(arms),
        "<h2>Scorer gap: the verifier against a strict second reading</h2>", _scorer_gap(arms),
        "<h2>Judge calls and cost</h2>", _judge(arms, dirs),
        "<h2>Merge verification</h2>", _merges(arms, dirs),
        "<h2>Failure clusters</h2>", _clusters(arms, dirs),
    ]
    base = demo.base if demo else {}
    if base.get("curve"):
        body += ["<h2>Starting model</h2>", table(["supervised steps", "dev accuracy"],
                                                  [[c["steps"], _pct(c["dev_accuracy"])] for c in base["curve"]],
                                                  {0, 1})]
    elif base.get("imported_from"):
        body += ["<h2>Starting model</h2>",
                 f"<p>{escape(base['imported_from'])} ({escape(base['quantization'])}, "
                 f"sha256 {escape(base['sha256'][:12])}), "
                 "dequantized to float32 by <code>hone models import</code>.</p>"]
    return page(title, body, out_path)


def page(title: str, body: list[str], out_path: Path) -> Path:
    """Write `body` as one self-contained page (inline CSS, no script, no network) in the report's style."""
    text = (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<meta http-equiv=Content-Security-Policy content=\"{CSP}\">"
            f"<meta name=viewport content='width=device-width,initial-scale=1'><title>{escape(title)}</title>"
            f"<style>{CSS}</style></head><body><main>{''.join(body)}</main></body></html>\n")
    write_text_atomic(out_path, text)
    return out_path
