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
        from hone.judge.config import load_judge_config
        from hone.judge.factory import JudgeSetup
        from hone.judge.run import JudgeStageConfig, run_judge
        from hone.progress import stage_bar

        missing = [name for name, v in (("--tasks", tasks), ("--generations", generations), ("-o", out)) if v is None]
        if missing:
            raise HoneError(f"hone judge needs {', '.join(missing)}")
        stage_config = JudgeStageConfig(
            judge=JudgeSetup(spec=judge_spec, settings=load_judge_config(config), concurrency=concurrency,
                             budget_usd=budget_usd, sandbox=sandbox, run_dir=run_dir),
            batch=batch, second_opinion=second_opinion, restart=restart, overwrite=overwrite)
        with stage_bar("judge") as bar:
            result = run_judge(stage_config, tasks, generations, out, pairwise=pairwise, progress=bar)
        c, r = result.counts, result.report
        if result.skipped:
            typer.echo(f"{out}: already complete for these inputs and settings (skipped)")
        outcomes = ", ".join(f"{k} {c[k]}" for k in ("pass", "fail", "win", "tie", "loss", "error") if k in c)
        typer.echo(f"wrote {c['items']} verdicts to {out}: {outcomes}"
                   + (f" ({r.inconsistent_ties} ties are order-inconsistent pairs)" if r.inconsistent_ties else "")
                   + (f"; errors by kind: {r.errors_by_kind}" if r.errors_by_kind else ""))
        _echo_calls(r.judge_calls)
        if r.sandbox:
            typer.echo(f"sandbox: {r.sandbox}")
        if c["unfinished"]:
            typer.echo(f"unfinished: {c['unfinished']} items ended as errors a re-run may fix (API failures or "
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
        restart: bool = RESTART,
        overwrite: bool = OVERWRITE,
    ) -> None:
        """Measure how often the LLM judge agrees with the verifiers on items both can judge."""
        from hone.judge.calibrate import CalibrateConfig, run_calibrate
        from hone.judge.config import load_judge_config
        from hone.judge.factory import JudgeSetup
        from hone.progress import stage_bar

        stage_config = CalibrateConfig(
            judge=JudgeSetup(spec=judge_spec, settings=load_judge_config(config), concurrency=concurrency,
                             budget_usd=budget_usd, sandbox=sandbox, run_dir=run_dir),
            restart=restart, overwrite=overwrite)
        with stage_bar("calibrate") as bar:
            result = run_calibrate(stage_config, tasks, generations, out, progress=bar)
        if result.skipped:
            typer.echo(f"{out}: already complete for these inputs and settings (skipped)")

        def pct(x):
            return "n/a" if x is None else f"{100 * x:.1f}%"

        r = result.report
        kappa = "n/a" if r.cohen_kappa is None else f"{r.cohen_kappa:.3f}"
        typer.echo(f"{r.judge} vs verifiers on {r.both_decided} items: agreement {pct(r.agreement)}, "
                   f"kappa {kappa}, passes what the verifier failed {pct(r.false_pass_rate)}, fails what it "
                   f"passed {pct(r.false_fail_rate)}, {r.llm_errors} judge errors; report in {out}")

    app.add_typer(group, name="judge")
