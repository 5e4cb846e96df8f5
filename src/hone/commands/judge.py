"""`hone judge` (and `hone judge calibrate`): verdicts for generations, from verifiers and/or an LLM judge."""

from __future__ import annotations

from pathlib import Path

import typer

from hone.commands.options import OVERWRITE, RESTART, SANDBOX

JUDGE_HELP = ("anthropic[:MODEL] | openai:MODEL@URL | local:DIR | verifier | composite[:<llm spec>] "
              "(composite: verifiers first, the LLM where they cannot decide)")


def _echo_calls(calls: dict) -> None:
    llm = calls.get("llm", calls)
    ledger = llm.get("ledger")
    if not ledger:
        return
    typer.echo(f"judge calls this run: {llm.get('calls', 0)} paid, {llm.get('cached', 0)} from cache, "
               f"{llm.get('retries', 0)} retries, {llm.get('reasks', 0)} re-asks; ledger of this run directory: "
               f"{ledger['calls']} calls, {ledger['input_tokens']}+{ledger['output_tokens']} tokens, "
               f"${ledger['usd']:.4f}" + (f" ({ledger['calls_of_unknown_cost']} calls of unknown price)"
                                          if ledger["calls_of_unknown_cost"] else ""))


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Judge generations: verifiers first, an LLM judge where they cannot decide.",
                        invoke_without_command=True)

    @group.callback()
    def judge(
        ctx: typer.Context,
        tasks: Path = typer.Option(None, help="Task JSONL."),
        generations: Path = typer.Option(None, help="Generation JSONL to judge."),
        out: Path = typer.Option(None, "-o", "--out", help="Verdict JSONL to write."),
        judge_spec: str = typer.Option("composite", "--judge", help=JUDGE_HELP),
        pairwise: Path = typer.Option(None, help="Reference generations: judge win/tie/loss against them, both orders."),
        batch: bool = typer.Option(False, help="Anthropic Message Batches API: half price, slower; resumable."),
        concurrency: int = typer.Option(8, help="Judge calls in flight."),
        budget_usd: float = typer.Option(None, help="Stop before the run directory's judge ledger exceeds this."),
        run_dir: Path = typer.Option(None, help="Where the judge cache + ledger live (default: the output's folder)."),
        config: Path = typer.Option(None, help="Judge config YAML: prices, rpm, tpm, timeouts, retries, max_tokens."),
        second_opinion: bool = typer.Option(False, help="Composite: also ask the LLM where a verifier decided."),
        restart: bool = RESTART,
        overwrite: bool = OVERWRITE,
        sandbox: str = SANDBOX,
    ) -> None:
        """Write one verdict per generation; a killed run resumes and pays for no answer twice."""
        if ctx.invoked_subcommand:
            return
        from hone.errors import HoneError
        from hone.judge.run import run_judge
        from hone.progress import stage_bar

        missing = [name for name, v in (("--tasks", tasks), ("--generations", generations), ("-o", out)) if v is None]
        if missing:
            raise HoneError(f"hone judge needs {', '.join(missing)}")
        with stage_bar("judge") as factory:
            result = run_judge(tasks, generations, out, judge_spec, pairwise=pairwise, concurrency=concurrency,
                               budget_usd=budget_usd, batch=batch, run_dir=run_dir, progress_factory=factory,
                               config=config, second_opinion=second_opinion,
                               restart=restart, overwrite=overwrite, sandbox=sandbox)
        s = result.summary
        if result.skipped:
            typer.echo(f"{out}: already complete for these inputs and settings (skipped)")
        counts = ", ".join(f"{k} {s[k]}" for k in ("pass", "fail", "win", "tie", "loss", "error") if k in s)
        typer.echo(f"wrote {s['items']} verdicts to {out}: {counts}"
                   + (f" ({s['inconsistent_ties']} ties are order-inconsistent pairs)" if s.get("inconsistent_ties")
                      else "")
                   + (f"; errors by kind: {s['errors_by_kind']}" if s.get("errors_by_kind") else ""))
        _echo_calls(s.get("judge_calls", {}))
        ran_code = next((v.evidence for v in result.verdicts if "isolation" in v.evidence), None)
        if ran_code:
            typer.echo(f"sandbox: {ran_code.get('sandbox', sandbox)}: {ran_code['isolation']}")
        if result.unfinished:
            typer.echo(f"unfinished: {result.unfinished} items ended as errors a re-run may fix (API failures or "
                       "the budget); run the same command again to judge only those", err=True)
            raise typer.Exit(1)

    @group.command("calibrate")
    def calibrate(
        tasks: Path = typer.Option(..., help="Task JSONL with math / code tasks."),
        generations: Path = typer.Option(..., help="Generation JSONL."),
        out: Path = typer.Option(..., "-o", "--out", help="Report JSON to write."),
        judge_spec: str = typer.Option("anthropic", "--judge", help="The LLM judge to calibrate."),
        concurrency: int = typer.Option(8),
        budget_usd: float = typer.Option(None),
        run_dir: Path = typer.Option(None),
        config: Path = typer.Option(None),
        sandbox: str = SANDBOX,
    ) -> None:
        """Measure how often the LLM judge agrees with the verifiers on items both can judge."""
        from hone.judge.calibrate import run_calibrate
        from hone.progress import stage_bar

        with stage_bar("calibrate") as factory:
            r = run_calibrate(tasks, generations, out, judge_spec, concurrency=concurrency, budget_usd=budget_usd,
                              run_dir=run_dir, config=config, progress_factory=factory, sandbox=sandbox)

        def pct(x):
            return "n/a" if x is None else f"{100 * x:.1f}%"

        kappa = "n/a" if r["cohen_kappa"] is None else f"{r['cohen_kappa']:.3f}"
        typer.echo(f"{r['judge']} vs verifiers on {r['both_decided']} items: agreement {pct(r['agreement'])}, "
                   f"kappa {kappa}, passes what the verifier failed {pct(r['false_pass_rate'])}, fails what it "
                   f"passed {pct(r['false_fail_rate'])}, {r['llm_errors']} judge errors; report in {out}")

    app.add_typer(group, name="judge")
