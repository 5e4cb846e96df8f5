"""How a round improves the model: one function per kind of round, chosen by name. The seam a new method plugs into.

The loop conducts what every round shares: it starts from the promoted model, asks the round's kind for an
adapter trained on that model, merges it with proof, benchmarks the candidate and gates it. What happens before
the adapter exists — which prompts are sampled, what the model learns from, which trainer runs — is the kind's.

    KINDS = {"sft": sft_round, "grpo": grpo_round}       # LoopConfig.round_kind (train.objective) names one

A kind is `improve(ctx: RoundContext) -> Improvement`: it reads and writes only under `ctx.layout` (so a killed
round resumes through its stages' manifests), returns the adapter it trained (None: nothing to train on, the model
stays, with `reason`), and the typed reports the round record keeps (`Improvement.reports`). **A new kind of
round** is one function here, one line in `KINDS`, and the config value that names it (`LoopConfig.round_kind`);
GRPO came in that way: `grpo_round` writes the round's prompts and trains online on them, rewarded by the
verifiers, and the loop merges, benchmarks and gates its adapter like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from hone.errors import HoneError
from hone.progress import Say, stage_bar, step_bars

if TYPE_CHECKING:
    from hone.generate.registry import EnginePool
    from hone.loop_config import LoopConfig
    from hone.round import RoundCritique, RoundData, RoundLayout, RoundRL
    from hone.sample.run import SampleReport


@dataclass(frozen=True)
class RoundContext:
    """What a round's kind works with: the loop's config, the round's folder, the promoted model it starts from,
    the engine pool (close it before training: the GPU goes to the trainer), where to say what it does, and
    whether this run restarts stages that other inputs made."""

    config: LoopConfig
    layout: RoundLayout
    model: Path
    engines: EnginePool
    say: Say
    restart: bool


@dataclass(frozen=True)
class Improvement:
    """What a round's kind made: the adapter (None: nothing to train on; `reason` says why) and its reports."""

    adapter: Path | None
    reason: str = ""
    train_prompts: SampleReport | None = None
    critique: RoundCritique | None = None
    data: RoundData | None = None
    rl: RoundRL | None = None

    def reports(self) -> dict:
        """The reports, by the name the round record (hone.round.RoundRecord) keeps each under."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("adapter", "reason")}


def sft_round(ctx: RoundContext) -> Improvement:
    """Sample the round's prompts (resampling the unsolved), optionally self-critique the failures, build verified
    SFT rows (or the control's unverified ones), and train a LoRA on them."""
    from hone.round import RoundCritique, RoundData

    sampled = _sample(ctx)
    critiques, summary = _critique(ctx) if ctx.config.improve in ("critique", "both") else (None, None)
    data = RoundData(**_data(ctx, critiques))
    if data.rows == 0:
        return Improvement(None, "no training rows this round (nothing verified); the model stays",
                           sampled, summary and RoundCritique(**summary.model_dump()), data)
    ctx.say(f"  training a LoRA on {data.rows} rows ({data.source})")
    ctx.engines.close()  # the GPU memory of the generation engine goes to training
    from hone.train.sft import run_train

    with stage_bar(f"round {ctx.layout.round} · train") as bar:
        trained = run_train(ctx.config.train.model_copy(update={"restart": ctx.restart}), ctx.layout.sft, ctx.model,
                            ctx.layout.adapter, progress=bar)
    return Improvement(trained.outputs["adapter"], "", sampled, summary and RoundCritique(**summary.model_dump()),
                       data)


def grpo_round(ctx: RoundContext) -> Improvement:
    """Write the round's prompts and train a LoRA on them with GRPO, the verifiers as the reward (or the control's
    random reward at round 0's pass rate on the trained suites). A run in which no group's rewards varied learned
    nothing: the model stays."""
    from hone.records import read_tasks, write_records
    from hone.round import RoundRL
    from hone.sample.run import round_prompts
    from hone.train.grpo import nothing_learned, run_grpo

    c, lay = ctx.config, ctx.layout
    prompts = round_prompts(read_tasks(c.train_tasks), c.sample.prompts_per_round, lay.round)
    write_records(lay.prompts, prompts)
    train = c.train.model_copy(update={"sandbox": c.sandbox, "restart": ctx.restart})
    if c.control == "random-reward" and train.random_reward_p is None:
        train = train.model_copy(update={"reward": "random", "random_reward_p": _round0_pass_rate(ctx)})
    reward = f"random reward, p={train.random_reward_p}" if train.reward == "random" else "the verifiers' reward"
    ctx.say(f"round {lay.round}: GRPO on {len(prompts)} prompts with {reward}, from {ctx.model}")
    ctx.engines.close()  # the GPU memory of the generation engine goes to training
    with stage_bar(f"round {lay.round} · train (grpo)") as bar:
        result = run_grpo(train, lay.prompts, ctx.model, lay.adapter, progress=bar)
    rewards = result.report.rewards or {}
    learned = not nothing_learned(result)
    steps = result.counts["steps"]
    rl = RoundRL(prompts=len(prompts), rows=result.counts["rows"], steps=steps,
                 answers=steps * train.per_device_batch_size * train.gradient_accumulation_steps * train.num_processes,
                 rewards=rewards.get("functions", []), reward_curve=result.reward_curve(),
                 zero_variance_groups=rewards.get("mean_frac_reward_zero_std"), learned=learned)
    ctx.say(f"  {result.report.summary()}")
    if not learned:
        return Improvement(None, "no group's rewards varied; the model stays", rl=rl)
    return Improvement(result.folder, rl=rl)


KINDS: dict[str, Callable[[RoundContext], Improvement]] = {"sft": sft_round, "grpo": grpo_round}


def improve(ctx: RoundContext) -> Improvement:
    """Run the round's kind (LoopConfig.round_kind)."""
    kind = ctx.config.round_kind
    if kind not in KINDS:
        raise HoneError(f"round kind {kind!r}: Hone knows {', '.join(sorted(KINDS))}")
    return KINDS[kind](ctx)


def _sample(ctx: RoundContext) -> SampleReport:
    from hone.generate.base import GenParams
    from hone.generate.run import GenerateStageConfig
    from hone.sample.run import SampleStageConfig, run_sample

    c, s, r = ctx.config, ctx.config.sample, ctx.layout.round
    ctx.say(f"round {r}: sampling the training prompts with {ctx.model}")
    params = GenParams(n=s.n, temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens,
                       batch_size=s.batch_size, seed=c.seed * 1000 + r * 10)
    config = SampleStageConfig(generate=GenerateStageConfig(params=params, model_ref=ctx.engines.ref(ctx.model)),
                               resample_unsolved=s.resample_unsolved, prompts_per_round=s.prompts_per_round, round=r,
                               judge=None if c.judge == "verifier" else c.judge_setup(ctx.layout.run_dir),
                               sandbox=c.sandbox, restart=ctx.restart)
    result = run_sample(config, ctx.engines.factory(ctx.model, ctx.layout.dir), c.train_tasks, ctx.layout.dir,
                        progress=step_bars(f"round {r}"))
    rep = result.report
    ctx.say(f"  sampling: {rep.solved}/{rep.tasks} training prompts have a verified answer "
            f"(after each pass: {', '.join(map(str, rep.solved_after_pass))})")
    return rep


def _round0_pass_rate(ctx: RoundContext) -> float:
    """The starting model's accuracy on the trained held-out suites (gate.trained_suites; None: all), pooled:
    the random-reward control's probability when the config gives none."""
    from hone.round import RoundLayout

    bench = RoundLayout(ctx.layout.run_dir, 0).bench_report()
    if bench is None:
        raise HoneError(f"{RoundLayout(ctx.layout.run_dir, 0).bench}: round 0 has no benchmark to take the random "
                        "reward's p from; set train.random_reward_p")
    figures = bench.figures()
    suites = ctx.config.gate.trained_suites or sorted(figures)
    n = sum(figures[s].n for s in suites)
    return round(sum(figures[s].correct for s in suites) / n, 4) if n else 0.0


def _critique(ctx: RoundContext):
    from hone.critique.run import CritiqueStageConfig, rejudge_with, run_critique
    from hone.generate.base import GenParams

    c, cc, r, lay = ctx.config, ctx.config.critique, ctx.layout.round, ctx.layout
    stage_config = CritiqueStageConfig(
        params=GenParams(temperature=cc.temperature, max_new_tokens=cc.max_new_tokens,
                         batch_size=c.sample.batch_size, seed=c.seed * 1000 + r),
        samples=cc.samples, reference_guided=cc.reference_guided, round=r, model_ref=ctx.engines.ref(ctx.model),
        restart=ctx.restart)
    rejudge = rejudge_with(c.judge_setup(lay.run_dir), c.train_tasks, lay.run_dir)
    with stage_bar(f"round {r} · critique") as bar:
        result = run_critique(stage_config, ctx.engines.lazy(ctx.model, lay.dir), rejudge, c.train_tasks, lay.samples,
                              lay.verdicts, lay.critiques, progress=bar)
    if result.counts["unfinished"]:
        raise HoneError(f"{lay.critiques}: some rewrites could not be generated or judged yet; run the same command "
                        "again")
    return lay.critiques, result.report


def _data(ctx: RoundContext, critiques: Path | None) -> dict:
    from hone.data.run import DataStageConfig, run_data

    c, r, lay = ctx.config, ctx.layout.round, ctx.layout
    guards = DataStageConfig(kind="sft", replay_share=c.data.replay_share, ngram=c.data.ngram, round=r,
                             max_per_task=c.data.max_per_task, seed=c.seed + r, restart=ctx.restart)
    inputs = dict(bench_paths=list(c.heldout.values()), replay_path=c.data.replay)
    with stage_bar(f"round {r} · data") as bar:
        if c.control == "unverified":
            res = run_data(guards.model_copy(update={"kind": "unverified"}), c.train_tasks, lay.sft,
                           generations_path=lay.samples, progress=bar, **inputs)
            return {"rows": len(res.rows), "source": "unverified own samples (control)", **res.report.model_dump()}
        samples = c.improve in ("resample", "both")
        res = run_data(guards, c.train_tasks, lay.sft, critiques_path=critiques, progress=bar,
                       generations_path=lay.samples if samples else None,
                       verdicts_path=lay.verdicts if samples else None, **inputs)
    if critiques is not None and c.data.dpo:
        pairs = guards.model_copy(update={"kind": "dpo", "replay_share": 0.0, "max_per_task": None})
        run_data(pairs, c.train_tasks, lay.dpo, critiques_path=critiques, bench_paths=inputs["bench_paths"])
    source = " + ".join(k for k, on in (("samples", samples), ("rewrites", critiques is not None)) if on)
    return {"rows": len(res.rows), "source": f"verified {source}", **res.report.model_dump()}
