"""PNG plots: held-out accuracy per round with 95% CI bars, and win/tie/loss per category."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hone.atomic import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def accuracy_per_round(arms: dict[str, dict[str, Any]], out: Path) -> Path:
    """One line per (arm, suite): accuracy of the model in use after each round, with CI error bars."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for arm, summary in arms.items():
        suites = sorted({s for r in summary["rounds"] for s in r["suites"]})
        for suite in suites:
            pts = [(r["round"], r["suites"][suite]) for r in summary["rounds"] if suite in r["suites"]]
            xs = [x for x, _ in pts]
            ys = [100 * s["accuracy"] for _, s in pts]
            err = [[100 * (s["accuracy"] - s["ci"][0]) for _, s in pts], [100 * (s["ci"][1] - s["accuracy"]) for _, s in pts]]
            label = suite if len(arms) == 1 else f"{arm}: {suite}"
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=4, label=label)
    rounds = sorted({r["round"] for summary in arms.values() for r in summary["rounds"]})
    ax.set_xticks(rounds)
    ax.set_xlabel("round (0 = starting model)")
    ax.set_ylabel("held-out accuracy, % (95% CI)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out


def win_tie_loss(arms: dict[str, dict[str, Any]], out: Path) -> Path | None:
    """Stacked bars of the last round's candidate against the starting model, per arm and category."""
    rows = []
    for arm, summary in arms.items():
        last = next((r for r in reversed(summary["rounds"]) if r.get("win_tie_loss")), None)
        if not last:
            continue
        for suite, cats in last["win_tie_loss"].items():
            for cat, c in cats.items():
                rows.append((f"{arm}\n{suite}/{cat}" if len(arms) > 1 else f"{suite}/{cat}", c))
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.6 * len(rows)))
    labels = [r[0] for r in rows]
    left = [0.0] * len(rows)
    for key, color in (("win", "#2a9d8f"), ("tie", "#bbbbbb"), ("loss", "#e76f51")):
        vals = [r[1].get(key, 0) for r in rows]
        ax.barh(labels, vals, left=left, color=color, label=key)
        left = [a + b for a, b in zip(left, vals)]
    ax.set_xlabel("held-out items: last candidate vs round 0")
    ax.legend(ncol=3, fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out
