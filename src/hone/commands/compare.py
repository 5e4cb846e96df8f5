"""`hone compare A B`: is B really better than A? Paired, item by item, per suite."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def compare(
        a: str = typer.Argument(..., help="The first evaluation (the baseline): a bench folder, a loop round "
                                          "(run/round-2 or run:2), a loop arm (its last promoted round), a "
                                          "verdicts.jsonl, or lm-eval --log_samples output (samples_*.jsonl or "
                                          "its folder)."),
        b: str = typer.Argument(..., help="The second evaluation, of the same items (any of the same kinds)."),
        as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
        html: Path = typer.Option(None, "--html", help="Also write the comparison as a page in the report's style."),
    ) -> None:
        """Per suite: each accuracy with its 95% CI, B − A paired with its CI, McNemar's p, and the items that
        improved or regressed. Refuses two evaluations of different items or prompts."""
        import json

        from hone.compare import compare as paired, load_side, render_html, render_text

        result = paired(load_side(a), load_side(b))
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False) if as_json else render_text(result))
        if html is not None:
            render_html(result, html)
            if not as_json:
                typer.echo(f"wrote {html}")
