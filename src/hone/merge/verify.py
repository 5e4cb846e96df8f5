"""`hone verify-merge`: prove a merged model reproduces its adapter on the base exactly as training saw it.

Two kinds of evidence. Weights: the merged folder has the base's tensors (no missing or unexpected names,
same shapes and dtypes), every LoRA module has a non-zero update and its weight changed. Behaviour: on probe
prompts, the merged model's logits are compared with the adapter applied through PEFT on the reference base:
the base as the lineage says it was during training (quantized with the recorded settings if it was), because
comparing against the full-precision base would hide the very corruption this check exists for. Thresholds
depend on the dtype: fp32 merges are exact to rounding, bf16 ones carry bf16 noise.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

from hone.errors import HoneError
from hone.merge.report import Check, LogitChecks, Verification

BUILTIN_PROBES: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "What is 17 + 25?"}],
    [{"role": "user", "content": "Write a Python function that returns the square of a number."}],
    [{"role": "user", "content": "Name three primary colors."}],
    [{"role": "user", "content": "If a train travels 60 miles in 1.5 hours, what is its average speed?"}],
    [{"role": "system", "content": "You are a careful assistant."},
     {"role": "user", "content": "Explain in one sentence why the sky is blue."}],
    [{"role": "user", "content": "Solve for x: 3x - 7 = 11."},
     {"role": "assistant", "content": "x = 6"},
     {"role": "user", "content": "Check the answer step by step."}],
]
NEW_TOKENS = 16
_BATCH = 8  # probes per forward pass
_PROMPT_POSITIONS = 64  # scored positions at the end of each prompt (bounds the logits kept in memory)

# Limits per dtype of the compared models. fp32: merge rounding moves logits by ~1e-6..1e-4 (KL <= ~1e-9); bf16: a clean merge of a small model
# measured max 0.47, mean KL 5.8e-4, top-1 0.992, while a 4-bit-trained adapter merged into the bf16 base gave
# KL 2.4e-2 (../shared/FACTS.md).
THRESHOLDS: dict[str, dict[str, float]] = {
    "float32": {"max_abs_logit_diff": 1e-3, "mean_kl": 1e-7, "top1_agreement": 0.999, "greedy_identical": 1.0},
    "float16": {"max_abs_logit_diff": 1.0, "mean_kl": 2e-3, "top1_agreement": 0.98, "greedy_identical": 0.5},
    "bfloat16": {"max_abs_logit_diff": 2.0, "mean_kl": 3e-3, "top1_agreement": 0.98, "greedy_identical": 0.5},
}
_LOOSENESS = ["float32", "float16", "bfloat16"]


def read_probes(path: str | os.PathLike) -> list[list[dict[str, str]]]:
    """User probes: JSONL lines with `prompt` (text) or `messages` (a chat ending with a user turn)."""
    from hone.records import Message, iter_jsonl

    p = Path(path)
    probes = []
    for n, obj in iter_jsonl(p):
        if isinstance(obj.get("prompt"), str):
            probes.append([{"role": "user", "content": obj["prompt"]}])
        elif isinstance(obj.get("messages"), list):
            try:
                msgs = [Message.model_validate(m).model_dump() for m in obj["messages"]]
            except ValueError as e:
                raise HoneError(f"{p}:{n}: `messages`: {str(e).splitlines()[0]}") from None
            if not msgs or msgs[-1]["role"] == "assistant":
                raise HoneError(f"{p}:{n}: a probe must end with a user message")
            probes.append(msgs)
        else:
            raise HoneError(f"{p}:{n}: a probe needs `prompt` (text) or `messages`")
    if not probes:
        raise HoneError(f"{p}: no probes (the file is empty)")
    return probes


def _check(value: float, limit: float, higher_is_better: bool = False) -> Check:
    passed = value >= limit if higher_is_better else value <= limit
    return Check(value=value, limit=limit, passed=bool(passed))


def _weights_checks(base: Path, adapter: Any, merged: Path) -> tuple[dict[str, Any], list[str]]:
    """Names, shapes and dtypes equal to the base; every LoRA module non-zero and applied."""
    import torch

    from hone.merge.shards import read_tensor, weight_index

    _, base_t = weight_index(base)
    _, merged_t = weight_index(merged)
    missing = sorted(set(base_t) - set(merged_t))
    unexpected = sorted(set(merged_t) - set(base_t))
    reshaped = sorted(n for n in set(base_t) & set(merged_t)
                      if (base_t[n].shape, base_t[n].dtype) != (merged_t[n].shape, merged_t[n].dtype))
    not_in_base = sorted(t for t in adapter.modules if t not in base_t)
    zero_delta, not_applied = [], []
    for target, module in adapter.modules.items():
        if target in not_in_base or target not in merged_t:
            continue
        if not torch.any(module.b) or not torch.any(module.a):
            zero_delta.append(target)
        elif torch.equal(read_tensor(base_t[target]), read_tensor(merged_t[target])):
            not_applied.append(target)
    failures = []
    for label, names in (("missing from the merge", missing), ("unexpected in the merge", unexpected),
                         ("changed shape or dtype", reshaped), ("adapter modules absent from the base", not_in_base),
                         ("adapter modules with a zero update (never trained?)", zero_delta),
                         ("adapter modules not applied", not_applied)):
        if names:
            failures.append(f"{len(names)} {label} (e.g. {names[0]})")
    checks = {"tensors": len(base_t), "lora_modules": len(adapter.modules), "missing": missing[:20],
              "unexpected": unexpected[:20], "changed_shape_or_dtype": reshaped[:20],
              "absent_from_base": not_in_base[:20], "zero_delta": zero_delta[:20], "not_applied": not_applied[:20],
              "passed": not failures}
    return checks, failures


def _for_compute(model: Any, device: str):
    """On CPU, compute in float32: the weights keep their exact (e.g. bf16) values, and CPU bf16 matmuls are
    both slow and noisy enough to hide small differences. On GPU, compute in the dtype training used."""
    import torch

    return model.to(torch.float32) if device == "cpu" else model


def _reference_model(base: Path, adapter_dir: Path, lineage: dict[str, Any] | None, device: str):
    """The adapter through PEFT on the base as it was during training; and a description of it."""
    from peft import PeftModel

    from hone.models.loading import inspect_model_dir, load_model
    from hone.models.quantize import apply_quantization, check_spec

    info = inspect_model_dir(base)
    dtype = (lineage or {}).get("base", {}).get("train_dtype") or info.dtype
    quant = check_spec((lineage or {}).get("base", {}).get("quantization"), str(adapter_dir / "lineage.json"))
    model = load_model(base, dtype=dtype, device=device)
    if quant:
        apply_quantization(model, quant)
    model = _for_compute(model, device)
    with warnings.catch_warnings():  # transformers' deprecation notices about PEFT internals, not the user's
        warnings.simplefilter("ignore", FutureWarning)
        model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    model.eval()
    how = f"{dtype} base" + (f" quantized as in training: {quant.describe()}" if quant else " in full precision")
    return model, dtype, how


def _continuations(model: Any, prompts: list[list[int]], tokenizer: Any) -> list[list[int]]:
    """The reference's greedy continuations (through its first stop token), in left-padded batches."""
    import torch

    from hone.chat import stop_token_ids

    device = next(model.parameters()).device
    stops = set(stop_token_ids(tokenizer))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: list[list[int]] = []
    for i in range(0, len(prompts), _BATCH):
        batch = prompts[i:i + _BATCH]
        width = max(map(len, batch))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in batch], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device=device)
        with torch.no_grad():
            gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW_TOKENS, do_sample=False,
                                 temperature=None, top_p=None, top_k=None, eos_token_id=sorted(stops),
                                 pad_token_id=pad)
        for row in gen[:, width:].tolist():
            cut = next((k + 1 for k, t in enumerate(row) if t in stops), len(row))
            out.append(row[:cut])
    return out


def _logits(model: Any, prompts: list[list[int]], continuations: list[list[int]]) -> list[Any]:
    """Float32 logits (on CPU) at the scored positions of prompt + continuation: the last prompt tokens and
    every position that predicts a continuation token. One teacher-forced pass per batch, right-padded."""
    import torch

    device = next(model.parameters()).device
    out = []
    for i in range(0, len(prompts), _BATCH):
        seqs = [p + c for p, c in zip(prompts[i:i + _BATCH], continuations[i:i + _BATCH])]
        width = max(map(len, seqs))
        ids = torch.tensor([s + [0] * (width - len(s)) for s in seqs], device=device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits
        for k, (p, s) in enumerate(zip(prompts[i:i + _BATCH], seqs)):
            first = max(0, len(p) - _PROMPT_POSITIONS)
            out.append(logits[k, first:len(s) - 1].to(torch.float32).cpu())
    return out


def _compare(prompts: list[list[int]], continuations: list[list[int]], ref_logits: list,
             merged_logits: list) -> dict[str, float]:
    """Max |logit difference|, mean KL(reference || merged) and top-1 agreement over all scored positions; and the
    share of probes whose greedy continuation the merged model reproduces token for token (its argmax equals the
    reference's at every continuation position: exactly when greedy decoding would give the same tokens)."""
    import torch

    max_abs, kl_sum, agree, positions, identical = 0.0, 0.0, 0, 0, 0
    for p, c, r, m in zip(prompts, continuations, ref_logits, merged_logits):
        max_abs = max(max_abs, (r - m).abs().max().item())
        # float64: in float32 the KL of two identical-to-rounding models reads ~1e-8 instead of ~1e-12.
        lr, lm = torch.log_softmax(r.double(), -1), torch.log_softmax(m.double(), -1)
        kl_sum += (lr.exp() * (lr - lm)).sum(-1).clamp_min(0).sum().item()
        same = r.argmax(-1) == m.argmax(-1)
        agree += same.sum().item()
        positions += r.shape[0]
        identical += bool(same[r.shape[0] - len(c):].all()) if c else True
    return {"max_abs_logit_diff": max_abs, "mean_kl": kl_sum / positions, "top1_agreement": agree / positions,
            "greedy_identical": identical / len(prompts), "positions": positions}


def _describe_failure(name: str, check: Check) -> str:
    value, limit = check.value, check.limit
    labels = {"max_abs_logit_diff": "max |logit difference|", "mean_kl": "mean KL divergence",
              "top1_agreement": "top-1 agreement", "greedy_identical": "share of identical greedy continuations"}
    if name in ("top1_agreement", "greedy_identical"):
        return f"{labels[name]} {value:.3f} < required {limit:.3f}"
    times = f" ({value / limit:.0f}x the limit)" if limit > 0 else ""
    return f"{labels[name]} {value:.3g} > limit {limit:.3g}{times}"


class MergeNotClean(HoneError):
    """A merge that failed verification; `result` holds every figure measured."""

    def __init__(self, message: str, result: Verification):
        super().__init__(message)
        self.result = result


def verify_merge(base_dir: str | os.PathLike, adapter_dir: str | os.PathLike, merged_dir: str | os.PathLike,
                 probes: list[list[dict[str, str]]] | None = None) -> Verification:
    """Check a merge and return the figures; raise MergeNotClean if it is not clean. Writes nothing: the
    caller decides where the result goes (a merge's own report, or `hone verify-merge --report`)."""
    import torch

    from hone.chat import encode, render_prompt
    from hone.hashing import tree_sha256
    from hone.merge.adapter import load_adapter
    from hone.models.loading import default_device, inspect_model_dir, load_model, load_tokenizer, weights_sha256
    from hone.models.lineage import read_lineage

    base, adapter_dir, merged = Path(base_dir), Path(adapter_dir), Path(merged_dir)
    t0 = time.perf_counter()
    merged_info = inspect_model_dir(merged)
    adapter = load_adapter(adapter_dir)
    lineage = read_lineage(adapter_dir)
    warnings = []
    if lineage is None:
        warnings.append("the adapter has no lineage: the reference is the adapter on this base as stored")
    elif lineage["base"].get("weights_sha256") != weights_sha256(base):
        warnings.append("this base's weights differ from the ones in the adapter's lineage")

    weights, failures = _weights_checks(base, adapter, merged)
    tokenizer = load_tokenizer(merged)
    all_probes = BUILTIN_PROBES + list(probes or [])
    prompts = [encode(tokenizer, render_prompt(tokenizer, p)) for p in all_probes]
    device = default_device()
    torch.manual_seed(0)
    ref_model, ref_dtype, reference = _reference_model(base, adapter_dir, lineage, device)
    continuations = _continuations(ref_model, prompts, tokenizer)
    ref_logits = _logits(ref_model, prompts, continuations)
    del ref_model
    merged_model = _for_compute(load_model(merged, dtype=merged_info.dtype, device=device), device)
    merged_logits = _logits(merged_model, prompts, continuations)
    del merged_model

    dtype = max((ref_dtype, merged_info.dtype), key=lambda d: _LOOSENESS.index(d) if d in _LOOSENESS else 0)
    limits = THRESHOLDS.get(dtype, THRESHOLDS["bfloat16"])
    measured = _compare(prompts, continuations, ref_logits, merged_logits)
    checks = LogitChecks(
        max_abs_logit_diff=_check(measured["max_abs_logit_diff"], limits["max_abs_logit_diff"]),
        mean_kl=_check(measured["mean_kl"], limits["mean_kl"]),
        top1_agreement=_check(measured["top1_agreement"], limits["top1_agreement"], higher_is_better=True),
        greedy_identical=_check(measured["greedy_identical"], limits["greedy_identical"], higher_is_better=True),
    )
    failures += [_describe_failure(name, c) for name, c in checks if not c.passed]
    result = Verification(
        status="failed" if failures else "clean",
        failures=failures,
        warnings=warnings,
        reference=f"adapter through PEFT on the {reference}",
        dtype=dtype,
        compute_dtype="float32" if device == "cpu" else dtype,
        weights=weights,
        logits=checks,
        probes=len(prompts),
        positions=measured["positions"],
        adapter_sha256=tree_sha256(adapter_dir),
        seconds=round(time.perf_counter() - t0, 3),
    )
    if failures:
        raise MergeNotClean(f"{merged}: the merge is NOT clean: {'; '.join(failures)} "
                            f"(reference: {result.reference})", result)
    return result


def check_and_report(base_dir: str | os.PathLike, adapter_dir: str | os.PathLike, merged_dir: str | os.PathLike,
                     report_path: str | os.PathLike, probes: list[list[dict[str, str]]] | None = None) -> Verification:
    """`hone verify-merge`: verify, write the result (clean or not) to `report_path`, raise if not clean."""
    from hone.atomic import write_text_atomic

    report = Path(report_path)
    if report.resolve().parent == Path(merged_dir).resolve():
        raise HoneError(f"{report}: write the report outside the model folder (it would change the model's hash)")
    body = {"base": str(Path(base_dir).resolve()), "adapter": str(Path(adapter_dir).resolve()),
            "merged": str(Path(merged_dir).resolve())}
    try:
        result = verify_merge(base_dir, adapter_dir, merged_dir, probes=probes)
    except MergeNotClean as e:
        write_text_atomic(report, json.dumps({**body, "status": "failed", "verification": e.result.model_dump(
            mode="json")}, indent=2, sort_keys=True) + "\n")
        raise HoneError(f"{e}; details in {report}") from None
    write_text_atomic(report, json.dumps({**body, "status": "clean", "verification": result.model_dump(mode="json")},
                                         indent=2, sort_keys=True) + "\n")
    return result
