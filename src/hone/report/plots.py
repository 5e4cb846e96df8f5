"""Plots of a run: held-out accuracy per round, paired uplift, win/tie/loss. PNG for Markdown, SVG for HTML.

Every figure reads the summaries only. Arms get their own colour, marker and a small sideways offset, so one
never hides behind the other; the line follows the model in use, a refused candidate is a hollow marker off
that line, labelled "refused".
"""

from __future__ import annotations

import io
from pathlib import Path
from hone.atomic import atomic_path
from hone.bench.report import SuiteFigures
from hone.round import LoopSummary, RoundRecord

STYLES = [("#1f5fa8", "o"), ("#d9622b", "s"), ("#2a9d4a", "^"), ("#8e44ad", "D"), ("#7f7f7f", "v")]
WTL_COLOURS = (("win", "#2a9d8f"), ("tie", "#c8c8c8"), ("loss", "#e76f51"))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "hone", "font.size": 9})
    return plt


def arm_style(i: int) -> tuple[str, str]:
    return STYLES[i % len(STYLES)]


def _suites(summary: LoopSummary) -> list[str]:
    return sorted({s for r in summary.rounds for s in r.suites})


def in_use(summary: LoopSummary, suite: str) -> list[tuple[int, SuiteFigures, bool]]:
    """(round, accuracy of the model in use after it, whether that model changed in this round)."""
    out, current = [], None
    for r in summary.rounds:
        if r.round == 0 or (r.promoted and r.candidate):
            current = r.suites.get(suite, current)
            out.append((r.round, current, True))
        elif current is not None:
            out.append((r.round, current, False))
    return out


def refused(summary: LoopSummary, suite: str) -> list[tuple[int, SuiteFigures]]:
    """Candidates that were trained and benchmarked, then refused by the gate."""
    return [(r.round, r.suites[suite]) for r in summary.rounds if r.trained and not r.promoted and suite in r.suites]


def _ci(p: SuiteFigures) -> list[float]:
    return p.ci or [p.accuracy] * 2


def _err(points: list[SuiteFigures]) -> list[list[float]]:
    return [[100 * (p.accuracy - _ci(p)[0]) for p in points], [100 * (_ci(p)[1] - p.accuracy) for p in points]]


def _y_range(arms: dict[str, LoopSummary]) -> tuple[float, float]:
    """The span of every CI plotted, in steps of 5 points with a margin: 9% vs 14% must not look like one line."""
    import math

    ends = [100 * e for s in arms.values() for r in s.rounds for a in r.suites.values() for e in _ci(a)]
    lo = max(0.0, 5 * math.floor((min(ends, default=0) - 2) / 5))
    hi = min(100.0, 5 * math.ceil((max(ends, default=100) + 2) / 5))
    if hi - lo < 20:
        lo, hi = max(0.0, min(lo, hi - 20)), min(100.0, max(hi, lo + 20))
    return lo, hi


def accuracy_figure(arms: dict[str, LoopSummary]):
    """One line per (arm, suite) through the model in use; refused candidates hollow; arms offset sideways."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.9))
    n = len(arms)
    styles = ("-", "--", ":", "-.")
    for i, (arm, summary) in enumerate(arms.items()):
        colour, marker = arm_style(i)
        dx = (i - (n - 1) / 2) * 0.12
        for j, suite in enumerate(_suites(summary)):
            name = suite if n == 1 else f"{arm}" + (f": {suite}" if len(_suites(summary)) > 1 else "")
            pts = in_use(summary, suite)
            xs = [r + dx for r, _, _ in pts]
            ys = [100 * p.accuracy for _, p, _ in pts]
            changed = [k for k, (_, _, c) in enumerate(pts) if c]
            ax.plot(xs, ys, styles[j % 4], color=colour, lw=1.8, marker=marker, ms=7, markevery=changed,
                    clip_on=False, label=f"{name}: model in use (filled = new model)")
            ax.errorbar([xs[k] for k in changed], [ys[k] for k in changed], yerr=_err([pts[k][1] for k in changed]),
                        fmt="none", ecolor=colour, capsize=3, lw=1.2)
            off = refused(summary, suite)
            if off:
                ax.errorbar([r + dx for r, _ in off], [100 * p.accuracy for _, p in off],
                            yerr=_err([p for _, p in off]), fmt=marker, mfc="white", mec=colour, mew=1.6, ms=7,
                            color=colour, capsize=3, lw=1, ls="none", alpha=0.9, clip_on=False,
                            label=f"{name}: candidate refused by the gate")
                for r, p in off:
                    ax.annotate("refused", (r + dx, 100 * p.accuracy), textcoords="offset points",
                                xytext=(6, -3), fontsize=7, color=colour)
    rounds = sorted({r.round for s in arms.values() for r in s.rounds})
    ax.set_xticks(rounds)
    ax.set_xlim(min(rounds) - 0.4, max(rounds) + 0.6)
    ax.set_xlabel("round (0 = starting model)")
    ax.set_ylabel("held-out accuracy, % (95% CI)")
    ax.set_ylim(*_y_range(arms))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.set_title("Held-out accuracy after each round", fontsize=10)
    fig.tight_layout()
    return fig


def uplift_figure(arms: dict[str, LoopSummary]):
    """Paired uplift vs round 0 with its 95% CI, one row per (arm, round, suite); None if nothing was trained."""
    rows = []
    for i, (arm, summary) in enumerate(arms.items()):
        for r in summary.rounds:
            for suite, up in sorted((r.uplift_vs_round0 or {}).items()):
                label = f"{arm} r{r.round}" + (f" {suite}" if len(_suites(summary)) > 1 else "")
                rows.append((label, up, i, r.promoted))
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 1.3 + 0.42 * len(rows)))
    for y, (label, up, i, promoted) in enumerate(reversed(rows)):
        colour, marker = arm_style(i)
        lo, hi = 100 * (up.diff - up.ci[0]), 100 * (up.ci[1] - up.diff)
        ax.errorbar([100 * up.diff], [y], xerr=[[lo], [hi]], fmt=marker, color=colour, capsize=3, ms=7,
                    mfc=colour if promoted else "white", mec=colour, mew=1.6)
        ax.annotate(f"{100 * up.diff:+.1f}  p={up.p_value:.2g}", (100 * up.ci[1], y),
                    textcoords="offset points", xytext=(5, -3), fontsize=7)
    ax.set_yticks(range(len(rows)), [r[0] for r in reversed(rows)])
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("uplift vs round 0, points (95% CI; hollow = refused)")
    ax.grid(axis="x", alpha=0.3)
    lo = min(100 * r[1].ci[0] for r in rows)
    hi = max(100 * r[1].ci[1] for r in rows)
    ax.set_xlim(min(lo, 0) - 3, max(hi, 0) + 0.35 * (max(hi, 0) - min(lo, 0)) + 6)
    ax.set_title("Paired uplift over the starting model", fontsize=10)
    fig.tight_layout()
    return fig


def last_candidate(summary: LoopSummary) -> RoundRecord | None:
    return next((r for r in reversed(summary.rounds) if r.win_tie_loss), None)


def no_candidate_reason(summary: LoopSummary) -> str:
    """Why an arm has no win/tie/loss: no round trained a candidate (each round's own reason)."""
    reasons = sorted({r.reason for r in summary.rounds if r.round})
    return "no candidate was trained: " + "; ".join(reasons) if reasons else "no round has run yet"


def win_tie_loss_figure(arms: dict[str, LoopSummary]):
    """Last candidate vs round 0, one bar per (arm, suite); an arm without a candidate gets a row saying why."""
    rows = []
    for i, (arm, summary) in enumerate(arms.items()):
        last = last_candidate(summary)
        if last is None:
            rows.append((arm, None, i, no_candidate_reason(summary)))
            continue
        for suite, cats in sorted(last.win_tie_loss.items()):
            total = {k: sum(c.get(k, 0) for c in cats.values()) for k, _ in WTL_COLOURS}
            rows.append((f"{arm} r{last.round}: {suite}", total, i, None))
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 1.3 + 0.5 * len(rows)))
    labels = [r[0] for r in rows]
    width = max((sum(r[1].values()) for r in rows if r[1]), default=1)
    for key, colour in WTL_COLOURS:
        left = [sum(r[1][k] for k, _ in WTL_COLOURS[: [x for x, _ in WTL_COLOURS].index(key)]) if r[1] else 0
                for r in rows]
        vals = [r[1][key] if r[1] else 0 for r in rows]
        bars = ax.barh(labels, vals, left=left, color=colour, label=key)
        for b, v in zip(bars, vals):
            if v and v >= 0.06 * width:
                ax.text(b.get_x() + b.get_width() / 2, b.get_y() + b.get_height() / 2, str(v), ha="center",
                        va="center", fontsize=7)
    for y, r in enumerate(rows):
        if r[1] is None:
            ax.text(0.01 * width, y, r[3][:110], va="center", fontsize=7, style="italic", color="#555555")
    ax.invert_yaxis()
    ax.set_xlim(0, width)
    ax.set_xlabel("held-out items: last candidate vs round 0 (win = right now, wrong before)")
    ax.legend(ncol=3, fontsize=7, loc="lower right", bbox_to_anchor=(1, 1), frameon=False)
    ax.set_title("Win / tie / loss per arm and suite", fontsize=10, loc="left")
    fig.tight_layout()
    return fig


def save_png(fig, out: Path) -> Path:
    plt = _pyplot()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out


def to_svg(fig) -> str:
    """The figure as an inline <svg> element (no XML prolog), its text kept as text."""
    plt = _pyplot()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]
