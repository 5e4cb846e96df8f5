"""`report.md`: per-round accuracy with CIs, paired uplift vs round 0, gate decisions, data and judge costs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hone.atomic import write_text_atomic
from hone.report.plots import (accuracy_figure, last_candidate, no_candidate_reason, save_png, uplift_figure,
                               win_tie_loss_figure)
from hone.round import LoopSummary


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _ci(ci: list[float]) -> str:
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def _arm_section(arm: str, summary: LoopSummary) -> list[str]:
    lines = [f"## {arm}", ""]
    if summary.description:
        lines += [summary.description, ""]
    lines += ["| round | suite | accuracy (95% CI) | n | uplift vs round 0, points (95% CI) | McNemar p | promoted |",
              "|---|---|---|---|---|---|---|"]
    for r in summary.rounds:
        for suite, s in sorted(r.suites.items()):
            up = (r.uplift_vs_round0 or {}).get(suite)
            up_s = f"{_pts(up.diff)} [{_pts(up.ci[0])}, {_pts(up.ci[1])}]" if up and r.round else "—"
            p = f"{up.p_value:.3g}" if up and r.round else "—"
            lines.append(f"| {r.round} | {suite} | {_pct(s.accuracy)} {_ci(s.ci)} | {s.n} | {up_s} | {p} "
                         f"| {'yes' if r.promoted else 'no'} |")
    lines.append("")
    for r in summary.rounds[1:]:
        bits = [f"**Round {r.round}**: {r.reason}"]
        if r.data:
            bits.append(f"training rows: {r.data.rows} ({r.data.source})")
        if r.train_prompts:
            t = r.train_prompts
            bits.append(f"training prompts solved by the current model: {t.solved}/{t.tasks}")
        c = r.critique
        if c:
            bits.append(f"{c.mode}: {c.accepted}/{c.attempts} rewrites accepted "
                        f"(failed answers fixed: {c.fixed_any_attempt}/{c.failed_items})")
        j = r.judge
        if j:
            bits.append(f"judge: {j.name}, {j.calls} calls, ${j.cost_usd:.4f}")
        lines.append("- " + "; ".join(bits))
    lines.append("")
    from hone.report.status import GAP_HEAD, gap_rows

    gaps = gap_rows(summary)
    if gaps:
        lines += ["Scorer gap (the verifier against a strict second reading; RISING: the gap of the samples grew "
                  "since the round before, the first sign of a model learning its grader):", "",
                  "| " + " | ".join(GAP_HEAD) + " |", "|" + "---|" * len(GAP_HEAD)]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in gaps]
        lines.append("")
    return lines


def render_report(arms: dict[str, LoopSummary], out_dir: str | Path, title: str = "Hone run report",
                  compared: dict[str, Any] | None = None) -> Path:
    """Write `report.md` and its PNGs into `out_dir` from the given summaries (one per arm); `compared`, a demo's
    verified vs control on the same items, leads the page."""
    out = Path(out_dir)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    acc = save_png(accuracy_figure(arms), plots / "accuracy.png")
    lines = [f"# {title}", ""]
    if compared:
        from hone.compare import arms_sentence

        sentence = arms_sentence(compared)
        lines += [f"**{sentence[0].upper()}{sentence[1:]}** (paired).", ""]
    lines += [f"![held-out accuracy per round]({acc.relative_to(out).as_posix()})", ""]
    for name, make, alt in (("uplift.png", uplift_figure, "paired uplift vs round 0"),
                            ("win_tie_loss.png", win_tie_loss_figure, "win/tie/loss per arm and suite")):
        fig = make(arms)
        if fig is not None:
            lines += [f"![{alt}]({save_png(fig, plots / name).relative_to(out).as_posix()})", ""]
    missing = [f"- `{arm}` has no win/tie/loss: {no_candidate_reason(s)}." for arm, s in arms.items()
               if last_candidate(s) is None]
    lines += [*missing, ""] if missing else []
    for arm, summary in arms.items():
        lines += _arm_section(arm, summary)
    lines += ["Accuracy CIs are Wilson 95% intervals; uplift is the paired difference on the same held-out items "
              "(95% CI of the paired difference, exact McNemar test). Every number is computed from the verdict "
              "files in this run directory.", ""]
    path = out / "report.md"
    write_text_atomic(path, "\n".join(lines))
    return path
