"""`hone merge`: add a LoRA adapter to its exact base, one tensor at a time, then prove the result.

For each base shard: write each weight the adapter changes as `cast(W + scale * B @ A)` computed in float32,
and copy every other byte range as it is, so memory stays near the adapter plus one tensor whatever the model
size. Config, generation config, tokenizer and the shard index are copied; names, shapes, dtypes and byte layout
are the base's, so the result loads wherever the base loads (transformers, vLLM).

Refusals (lesson 1 of DESIGN.md): a base whose weights hash differs from the adapter's lineage, and an adapter
trained on a quantized base unless `dequantized_base` merges into the weights it actually saw. `force` overrides
both, loudly, and verification still decides. The merge is built in a hidden folder and renamed into place only
once verified, so a failed or killed merge never leaves a usable-looking model. A finished merge of the same
base, adapter and settings is skipped (its manifest is `<out>.manifest.json`, outside the model folder).
"""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from hone.errors import HoneError
from hone.merge.adapter import load_adapter
from hone.merge.report import REPORT_FILE, MergeFigures, MergeReport
from hone.merge.shards import (INDEX_FILE, TensorEntry, copy_range, read_tensor, torch_dtype_of, weight_index,
                               write_tensor)
from hone.runs import Stage, manifest_for
from hone.stage_contract import ProgressFactory, StageConfig, StageResult

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt")
_NOT_COPIED = {INDEX_FILE, REPORT_FILE, "lineage.json", "train_log.json"}  # the base's own history


def _warn(message: str) -> None:
    from hone.progress import console

    console.print(f"[bold yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


class MergeConfig(StageConfig):
    """`force` merges despite a lineage mismatch (verification still decides); `dequantized_base` merges into the
    quantize/dequantize round trip a QLoRA adapter saw; `probes` are chats added to the built-in ones."""

    force: bool = False
    dequantized_base: bool = False
    verify: bool = True
    probes: list[list[dict[str, str]]] | None = None


class MergeResult(StageResult):
    """outputs: the merged `model` folder and its `report`; counts: LoRA modules, tensors written, shards."""

    report: MergeReport


def _check_output(base: Path, out: Path, stage: Stage, config: MergeConfig) -> None:
    """Refuse an output inside the base, a folder of someone else's (unless overwrite) or an earlier merge of other
    inputs or settings (unless restart); a folder holding only the report of a failed attempt is reused."""
    b, o = base.resolve(), out.resolve()
    if o == b or b in o.parents or o in b.parents:
        raise HoneError(f"{out}: the merge output must be a new folder outside the base ({base})")
    if out.exists():
        leftovers = [f.name for f in out.iterdir() if f.name != REPORT_FILE]
        if leftovers:
            earlier = stage.manifest()
            ours = earlier is not None and earlier.get("stage") == stage.name
            if not (config.overwrite or (ours and config.restart)):
                if ours:
                    why = stage.difference(earlier) or "the same inputs, unfinished"  # type: ignore[arg-type]
                    raise HoneError(f"{out}: holds a merge of other inputs or settings ({why}); pass --restart "
                                    "to replace it")
                raise HoneError(f"{out}: already exists and is not empty; choose a new output folder or delete it "
                                "(or pass --overwrite)")
            shutil.rmtree(out)


def plan(base: Path, adapter_dir: Path, *, force: bool, dequantized_base: bool,
         warn: Callable[[str], None] = _warn) -> dict[str, Any]:
    """Every check that can fail before a byte is written: lineage, coverage, shapes."""
    from hone.models.loading import inspect_model_dir, weights_sha256
    from hone.models.lineage import read_lineage
    from hone.models.quantize import check_spec

    info = inspect_model_dir(base)
    if info.quantized:
        raise HoneError(f"{base}: the base is stored quantized ({info.describe_quantization()}); merge into the "
                        "full-precision weights")
    adapter = load_adapter(adapter_dir)
    lineage = read_lineage(adapter_dir)
    files, tensors = weight_index(base)
    quant = None
    if lineage is None:
        warn(f"{adapter_dir}: no lineage.json (made by another tool?): nothing proves which base it was trained "
             "on; merging anyway, verification decides")
        if dequantized_base:
            raise HoneError(f"{adapter_dir}: --dequantized-base needs the lineage's quantization settings, and this "
                            "adapter has no lineage.json")
    else:
        recorded = lineage["base"].get("weights_sha256")
        actual = weights_sha256(base)
        if recorded != actual:
            msg = (f"{base}: these weights (sha256 {actual[:12]}) are not the base the adapter was trained on "
                   f"({lineage['base'].get('path')}, sha256 {str(recorded)[:12]})")
            if not force:
                raise HoneError(msg + "; pass --force to merge anyway and let verification judge")
            warn("FORCED: " + msg)
        quant = check_spec(lineage["base"].get("quantization"), str(adapter_dir / "lineage.json"))
        if quant and not dequantized_base:
            msg = (f"{adapter_dir}: the adapter was trained on a quantized base ({quant.describe()}); adding it to the "
                   "full-precision weights gives a model that behaves like neither (merged corruption)")
            if not force:
                raise HoneError(msg + "; merge with --dequantized-base into the weights the adapter actually saw")
            warn("FORCED: " + msg + "; verification will compare against the adapter on the quantized base")
            quant = None
        elif dequantized_base and not quant:
            raise HoneError(f"{adapter_dir}: --dequantized-base, but the lineage says the base was not quantized")
        if quant:
            missing = [n for n in quant.modules if n not in tensors]
            if missing:
                raise HoneError(f"{base}: the lineage lists quantized weights this base does not have: "
                                f"{', '.join(missing[:3])}")
    for target, module in adapter.modules.items():
        entry = tensors.get(target)
        if entry is None:
            raise HoneError(f"{adapter_dir}: the adapter changes {target}, which the base does not have "
                            "(an adapter for another architecture?)")
        if entry.shape != module.shape:
            raise HoneError(f"{adapter_dir}: {target} is {entry.shape} in the base but the adapter's update is "
                            f"{module.shape} (an adapter for another model size?)")
        if not entry.is_float:
            raise HoneError(f"{base}: {target} is stored as {entry.dtype}; only float weights can be merged")
    for target, tensor in adapter.replacements.items():
        entry = tensors.get(target)
        if entry is None or entry.shape != tuple(tensor.shape):
            raise HoneError(f"{adapter_dir}: modules_to_save tensor {target} does not match the base "
                            f"({'missing' if entry is None else entry.shape})")
    return {"files": files, "tensors": tensors, "adapter": adapter, "lineage": lineage, "quantization": quant}


_BLOCK_ELEMENTS = 1 << 20  # rows merged at a time: a 4 MB float32 block stays in cache


def _changes(entry: TensorEntry, p: dict[str, Any]) -> bool:
    quant = p["quantization"]
    return (entry.name in p["adapter"].modules or entry.name in p["adapter"].replacements
            or (quant is not None and entry.name in quant.modules))


def _merge_tensor(entry: TensorEntry, fin: int, fout: int, p: dict[str, Any]) -> None:
    """Read one base tensor, merge it in float32, write it at the same offset of the output shard."""
    import torch

    from hone.models.quantize import dequantized

    adapter, quant = p["adapter"], p["quantization"]
    module = adapter.modules.get(entry.name)
    replacement = adapter.replacements.get(entry.name)
    dtype = torch_dtype_of(entry.dtype)
    if replacement is not None:
        merged = replacement.to(dtype)
    elif quant is not None and entry.name in quant.modules:
        # Quantization groups run across rows: the whole tensor at once.
        weight = dequantized(entry.name, read_tensor(entry, fin).to(torch.float32), quant)
        merged = (module.add_to(weight) if module else weight).to(dtype)
    else:
        # In place in the tensor's own read buffer, a block of rows at a time: no full-size float32 copy.
        merged = read_tensor(entry, fin)
        step = max(1, _BLOCK_ELEMENTS // max(1, merged.shape[1]))
        for start in range(0, merged.shape[0], step):
            block = merged[start:start + step]
            block.copy_(module.add_to(block.to(torch.float32), slice(start, start + step)))
    write_tensor(fout, entry, merged)


def _merge_shards(p: dict[str, Any], work: Path) -> int:
    """Every shard: unchanged byte ranges copied in the kernel, changed tensors merged by a few worker threads
    (positional I/O, one torch thread each), each shard fsynced in the background while the next one merges."""
    import torch

    by_file: dict[Path, list[TensorEntry]] = {}
    for entry in p["tensors"].values():
        by_file.setdefault(entry.file, []).append(entry)
    workers = max(1, min(8, os.cpu_count() or 1))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # parallel across tensors instead: small ops on many threads stall on a busy machine
    changed, open_fds, syncs = 0, [], []
    try:
        with ThreadPoolExecutor(workers) as pool, ThreadPoolExecutor(1) as syncer:
            for src in p["files"]:
                fin = os.open(src, os.O_RDONLY)
                open_fds.append(fin)
                fout = os.open(work / src.name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                open_fds.append(fout)
                todo = sorted((e for e in by_file.get(src, []) if _changes(e, p)), key=lambda e: e.start)
                copied_to = 0
                for entry in todo:
                    copy_range(fin, fout, copied_to, entry.start)
                    copied_to = entry.end
                copy_range(fin, fout, copied_to, os.fstat(fin).st_size)
                changed += sum(1 for _ in pool.map(lambda e: _merge_tensor(e, fin, fout, p), todo))
                syncs.append(syncer.submit(os.fsync, fout))
            for s in syncs:
                s.result()
    finally:
        torch.set_num_threads(threads)
        for fd in open_fds:
            os.close(fd)
    return changed


def _copy_side_files(base: Path, dst: Path) -> list[str]:
    """Config, generation config, tokenizer, chat template, index...: every top-level non-weight file."""
    copied = []
    for f in sorted(base.iterdir()):
        if f.is_file() and not f.name.startswith(".") and f.name not in _NOT_COPIED \
                and not f.name.endswith(_WEIGHT_SUFFIXES):
            shutil.copy2(f, dst / f.name)
            copied.append(f.name)
    if (base / INDEX_FILE).exists():
        shutil.copy2(base / INDEX_FILE, dst / INDEX_FILE)
    return copied


def _result(report: MergeReport, out: Path, skipped: bool) -> MergeResult:
    m = report.merge
    return MergeResult(outputs={"model": out, "report": out / REPORT_FILE}, skipped=skipped, report=report,
                       counts={"lora_modules": m.lora_modules, "tensors_written": m.tensors_written,
                               "shards": m.shards})


def run_merge(config: MergeConfig, base_dir: str | os.PathLike, adapter_dir: str | os.PathLike,
              out_dir: str | os.PathLike, *, progress: ProgressFactory | None = None) -> MergeResult:
    """Merge, verify (unless `config.verify` is off), write `out_dir/merge_report.json`, and return it typed; a
    finished merge of the same inputs and settings is skipped and its report read back. `progress` counts the
    shards merged, then the verification as one more step.

    Raises HoneError for a refused merge (nothing written) or a failed verification (the output folder then holds
    only the report saying what failed).
    """
    from hone.hashing import tree_sha256
    from hone.models.lineage import write_lineage
    from hone.report.model_card import write_model_card
    from hone.runs import package_versions

    base, adapter_path, out = Path(base_dir), Path(adapter_dir), Path(out_dir)
    stage = Stage(manifest_for(out), "merge", {"base": base, "adapter": adapter_path}, config.fingerprint())
    if stage.is_done():
        return _result(MergeReport.read(out / REPORT_FILE), out, skipped=True)
    _check_output(base, out, stage, config)
    force, verify = config.force, config.verify
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        _warn(message)

    p = plan(base, adapter_path, force=force, dequantized_base=config.dequantized_base, warn=warn)
    stage.start()
    advance = progress(len(p["files"]) + bool(verify), 0) if progress else None
    work = out.parent / f".{out.name}.merging"
    if work.exists():
        shutil.rmtree(work)  # a killed earlier attempt
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    try:
        try:
            changed = _merge_shards(p, work)
        except OSError as e:  # a full disk mid-shard names no file: name the folder being written
            raise OSError(e.errno, e.strerror, e.filename or str(out)) from e
        copied = _copy_side_files(base, work)
        if advance:
            advance(len(p["files"]))
        merge_seconds = time.perf_counter() - t0
        adapter_lineage = p["lineage"]
        report = MergeReport(
            base=str(base.resolve()), adapter=str(adapter_path.resolve()), output=str(out.resolve()),
            merge=MergeFigures(lora_modules=len(p["adapter"].modules), replaced_modules=len(p["adapter"].replacements),
                               tensors_written=changed, shards=len(p["files"]), files_copied=copied,
                               into="dequantized base" if p["quantization"] else "base as stored",
                               forced=force, seconds=round(merge_seconds, 3)),
            warnings=warnings, versions=package_versions(), status="merging")
        write_lineage(work, {
            "kind": "merged",
            "base": adapter_lineage["base"] if adapter_lineage else {"path": str(base.resolve())},
            "merged_into": {"path": str(base.resolve()), "dequantized": bool(p["quantization"])},
            "adapter": {"path": str(adapter_path.resolve()), "sha256": tree_sha256(adapter_path),
                        "lineage": adapter_lineage},
        })
        report.write(work / REPORT_FILE)
        verification = None
        if verify:
            from hone.merge.verify import MergeNotClean, verify_merge

            try:
                verification = verify_merge(base, adapter_path, work, probes=config.probes)
                if advance:
                    advance(1)
            except MergeNotClean as e:
                out.mkdir(parents=True, exist_ok=True)
                report.model_copy(update={"verification": e.result, "warnings": warnings, "status": "failed: the "
                                          "merged weights were deleted"}).write(out / REPORT_FILE)
                raise HoneError(f"{str(e).replace(str(work), str(out))}; details in {out / REPORT_FILE}") from None
        else:
            warn(f"{out}: merged WITHOUT verification; run `hone verify-merge` before trusting it")
        report = report.model_copy(update={"verification": verification, "warnings": warnings,
                                           "status": "verified" if verify else "unverified"})
        report.write(work / REPORT_FILE)
        write_model_card(work)
        if out.exists():
            shutil.rmtree(out)  # only a report of an earlier failed attempt (checked above)
        os.replace(work, out)
    finally:
        if work.exists():
            shutil.rmtree(work)
    result = _result(report, out, skipped=False)
    stage.finish({k: str(v) for k, v in result.outputs.items()}, result.counts)
    return result
