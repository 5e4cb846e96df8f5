"""A Hugging Face model card (`README.md`) for a merged or promoted model, written from its typed reports.

On the Hub, or passed to a colleague, a model folder is judged by its card. Everything in it comes from the
reports Hone already wrote — the lineage (`TrainReport` of the adapter), `merge_report.json` (`MergeReport`),
and at promotion the candidate's `BenchReport` and the gate's paired decision — so the card cannot drift from
what was measured. The YAML header is `huggingface_hub.ModelCardData` (model-index: one result per held-out
suite), which `ModelCard.load` and `metadata_load` read back.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hone.bench.report import BenchReport
from hone.merge.report import REPORT_FILE, MergeReport
from hone.models.lineage import read_lineage
from hone.train.result import TrainReport

CARD_FILE = "README.md"
# Public benchmarks Hone imports (hone.importers), by the Hub dataset each comes from.
HUB_DATASETS = {"gsm8k": "openai/gsm8k", "mmlu": "cais/mmlu", "humaneval": "openai/openai_humaneval",
                "mbpp": "google-research-datasets/mbpp", "math": "hendrycks/competition_math"}


def _hub_dataset(suite: str) -> str | None:
    return next((hub for key, hub in HUB_DATASETS.items() if key in suite.lower()), None)


def _root_base(folder: Path) -> tuple[str, str | None]:
    """(the first model in the chain of merges, its Hub id where the folder names one)."""
    seen: set[Path] = set()
    while folder not in seen:
        seen.add(folder)
        lineage = read_lineage(folder) if folder.is_dir() else None
        if not lineage or lineage.get("kind") not in ("merged", "adapter", "model"):
            break
        folder = Path(lineage["base"]["path"])
    hub = None
    config = folder / "config.json"
    if config.is_file():
        name = str(json.loads(config.read_text()).get("_name_or_path") or "")
        hub = name if name.count("/") == 1 and not name.startswith((".", "/")) and not Path(name).exists() else None
    return str(folder), hub


def _name(folder: Path) -> str:
    """The folder's name; a loop's `RUN/round-N/model` is named `RUN-round-N`."""
    if folder.name == "model" and folder.parent.name.startswith("round-"):
        return f"{folder.parent.parent.name}-{folder.parent.name}"
    return folder.name


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _training(train: TrainReport | None) -> list[str]:
    if train is None:
        return ["The adapter carries no Hone lineage, so how it was trained is not known here."]
    cfg, data, t = train.config, train.data, train.training
    lines = [f"- objective: **{train.objective}** ({cfg.get('method', train.kind)}"
             + (f", LoRA r={cfg['lora_r']}, alpha={cfg.get('lora_alpha')}" if cfg.get("lora_r") else "")
             + f", learning rate {cfg.get('learning_rate')}, seed {cfg.get('seed')})",
             f"- data: {data.get('examples', '?')} rows from `{data.get('path')}` (sha256 "
             f"{str(data.get('sha256', ''))[:12]}), {data.get('dropped', 0)} dropped",
             f"- training: {train.summary()} on {t.device} ({t.processes} process{'es' if t.processes > 1 else ''})",
             f"- trained on: `{train.base.get('path')}` ({train.base.get('architecture')}, weights sha256 "
             f"{str(train.base.get('weights_sha256', ''))[:12]})"]
    return lines


def _gate(gate: dict[str, Any] | None, bench: BenchReport | None) -> list[str]:
    if gate is None:
        return ["Not yet benchmarked or gated: this card was written by `hone merge`. `hone loop` rewrites it "
                "with the held-out results when it promotes the model."]
    lines = [f"The gate compared this model with the model it replaced on the same held-out items, paired "
             f"(Newcombe 95% CI of the difference, exact McNemar test); it refuses any suite that drops by more "
             f"than {100 * gate['tolerance']:.1f} points. Decision: {gate['reason']}.", "",
             "| guard suite | n | before | after | difference (points) | 95% CI | McNemar p | improved | regressed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, s in sorted(gate["suites"].items()):
        lines.append(f"| {name} | {s['n']} | {_pct(s['before_accuracy'])} | {_pct(s['after_accuracy'])} | "
                     f"{_pts(s['difference'])} | [{_pts(s['ci95'][0])}, {_pts(s['ci95'][1])}] | "
                     f"{s['mcnemar_p']:.3g} | {s['improved']} | {s['regressed']} |")
    return lines


def _results(bench: BenchReport) -> list[str]:
    lines = ["| suite | accuracy | 95% CI | correct | graded items |", "|---|---|---|---|---|"]
    for name, s in sorted(bench.suites.items()):
        a = s.accuracy
        ci = f"[{100 * a.ci95[0]:.1f}, {100 * a.ci95[1]:.1f}]" if a.ci95 else "—"
        lines.append(f"| {name} | {_pct(a.accuracy)} | {ci} | {a.passed} | {a.graded_tasks} |")
    return lines


def _merge(merge: MergeReport | None) -> list[str]:
    if merge is None:
        return ["No merge report in this folder."]
    v = merge.verification
    proof = (f"verification {v.status}: {v.summary()}" if v is not None else "merged WITHOUT verification")
    return [f"- merged `{merge.adapter}` into `{merge.base}` ({merge.merge.into}, {merge.merge.lora_modules} LoRA "
            f"modules, {merge.merge.tensors_written} tensors written); status: {merge.status}", f"- {proof}"]


def _reproduce(merge: MergeReport | None, run_dir: Path | None) -> str:
    command = run_dir / "command.json" if run_dir else None
    if command is not None and command.is_file():
        c = json.loads(command.read_text())
        return f"cd {shlex.quote(c.get('cwd', '.'))} && {shlex.join(c['argv'])}"
    if merge is not None:
        return shlex.join(["hone", "merge", "--base", merge.base, "--adapter", merge.adapter, "-o", merge.output])
    return "(not recorded)"


def write_model_card(model_dir: str | os.PathLike, *, bench: BenchReport | None = None,
                     gate: dict[str, Any] | None = None, run_dir: str | os.PathLike | None = None) -> Path:
    """Write `model_dir/README.md` from the folder's lineage and merge report, and, at promotion, the bench
    report and the gate decision (`hone.gate.decide`); `run_dir` holds the loop's command.json."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    from hone.grade import grader_versions

    folder = Path(model_dir)
    merge = MergeReport.read(folder / REPORT_FILE) if (folder / REPORT_FILE).is_file() else None
    lineage = read_lineage(folder) or {}
    adapter_lineage = (lineage.get("adapter") or {}).get("lineage")
    try:
        train = TrainReport.model_validate(adapter_lineage) if adapter_lineage else None
    except ValidationError:  # an adapter lineage of another version: the card says training is not known
        train = None
    name = _name(Path(merge.output) if merge else folder.resolve())
    parent = train.base["path"] if train else merge.base if merge else None  # the model it was trained on
    root, hub_id = _root_base(Path(parent)) if parent else (str(folder), None)
    evals = [EvalResult(task_type="text-generation", dataset_type=_hub_dataset(suite) or suite,
                        dataset_name=suite, metric_type="accuracy", metric_name="accuracy",
                        metric_value=s.accuracy.accuracy)
             for suite, s in sorted((bench.suites if bench else {}).items()) if s.accuracy.accuracy is not None]
    data = ModelCardData(
        model_name=name, base_model=hub_id or parent,
        library_name="transformers", tags=["hone", "lora", "merged"] + ([train.objective] if train else []),
        pipeline_tag="text-generation",
        datasets=sorted({d for d in map(_hub_dataset, bench.suites if bench else []) if d}) or None,
        eval_results=evals or None)
    graders = ", ".join(f"{kind}: `{version}`" for kind, version in sorted(grader_versions().items()))
    body = [
        f"# {name}", "",
        f"A chat model made by Hone from `{root}`"
        + (f" (`{hub_id}`)" if hub_id else "") + ": a LoRA adapter trained on verified answers, merged into the "
        "model it was trained on, and kept only if it passed the paired promotion gate.", "",
        "## Training", "", *_training(train), "",
        "## Promotion gate", "", *_gate(gate, bench), "",
    ]
    if bench is not None:
        body += ["## Held-out results", "", *_results(bench), "",
                 f"Greedy generation, {bench.params.get('max_new_tokens', '?')} new tokens at most; accuracy CIs "
                 "are Wilson 95%.", ""]
    body += ["## Merge verification", "", *_merge(merge), "",
             "## Graders", "", f"Grader versions: {graders}.", "",
             "## Reproduce", "", "```bash", _reproduce(merge, Path(run_dir) if run_dir else None), "```", ""]
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))
    path = folder / CARD_FILE
    from hone.atomic import write_text_atomic

    write_text_atomic(path, str(card))
    return path
