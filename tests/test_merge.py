"""`hone merge` / `verify-merge`: exact against PEFT, streaming over shards, and loud about a wrong base.

The corruption scenario of DESIGN.md lesson 1 runs for real on a tiny model: a LoRA trained on a 4-bit
(fake-NF4) copy of a trained base, merged into the full-precision base, must fail verification by a wide
margin; merged into the dequantized base it must pass.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_support import addition_rows, one_torch_thread, write_jsonl  # noqa: F401 - a fixture

from hone.errors import HoneError
from hone.merge.run import REPORT_FILE, MergeConfig, run_merge
from hone.merge.shards import weight_index
from hone.merge.verify import THRESHOLDS, verify_merge
from hone.train.config import TrainConfig
from hone.train.sft import run_train


def resave(src: Path, dst: Path, dtype=torch.float32, shard: str | None = None) -> Path:
    """The tiny model re-saved in another dtype and/or split into several shards (with an index)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(src, dtype=dtype)
    model.save_pretrained(dst, max_shard_size=shard) if shard else model.save_pretrained(dst)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)
    return dst


def peft_adapter(base: Path, out: Path, **lora) -> Path:
    """A PEFT adapter with random (non-zero) A and B, as another tool would hand one over: no lineage."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    cfg = LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False, **lora)
    peft_model = get_peft_model(model, cfg)
    with torch.no_grad():  # a trained adapter's size of update, not init noise
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.mul_(0.05)
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def trained_base(tiny_model_dir, tmp_path_factory) -> Path:
    """A briefly trained tiny model: sharp enough distributions that corruption shows in the logits."""
    tmp = tmp_path_factory.mktemp("trained")
    data = write_jsonl(tmp / "add.jsonl", addition_rows(640, seed=0))
    cfg = TrainConfig(method="full", learning_rate=1e-3, per_device_batch_size=32, max_steps=40)
    return run_train(cfg, data, tiny_model_dir, tmp / "base").folder


def test_merge_equals_peft_merge_and_unload_over_shards(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = resave(tiny_model_dir, tmp_path / "base", shard="300KB")
    files, _ = weight_index(base)
    assert len(files) >= 3 and (base / "model.safetensors.index.json").exists()
    adapter = peft_adapter(base, tmp_path / "adapter", r=8, lora_alpha=16, use_rslora=True,
                           target_modules=["q_proj", "v_proj", "down_proj"],
                           rank_pattern={"down_proj": 4}, alpha_pattern={"v_proj": 32})
    report = run_merge(MergeConfig(), base, adapter, tmp_path / "merged").report
    assert report.status == "verified" and report.merge.lora_modules == 6
    assert any("no lineage.json" in w for w in report.warnings)
    from huggingface_hub import metadata_load  # the model card `hone merge` writes: no results claimed yet

    card = metadata_load(tmp_path / "merged" / "README.md")
    assert card["base_model"] == str(base.resolve()) and "model-index" not in card
    assert "hone merge --base" in (tmp_path / "merged" / "README.md").read_text()

    ours = {}
    for f in sorted((tmp_path / "merged").glob("*.safetensors")):
        ours.update(load_file(f))
    theirs = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
                                       str(adapter)).merge_and_unload().state_dict()
    assert set(ours) <= set(theirs)
    worst = max((ours[k] - theirs[k]).abs().max().item() for k in ours)
    assert worst <= 1e-6
    changed = [k for k in ours if not torch.equal(ours[k], load_file(base / weight_index(base)[1][k].file.name)[k])]
    assert len(changed) == 6
    index = json.loads((tmp_path / "merged" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(ours)
    merged_model = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")  # loads like any HF model
    assert merged_model.config.hidden_size == 128


def test_bf16_base_stays_bf16_and_verifies_with_bf16_limits(tiny_model_dir, tmp_path):
    base = resave(tiny_model_dir, tmp_path / "base", dtype=torch.bfloat16)
    adapter = peft_adapter(base, tmp_path / "adapter", r=4, lora_alpha=8, target_modules="all-linear")
    v = run_merge(MergeConfig(), base, adapter, tmp_path / "merged").report.verification
    assert v.dtype == "bfloat16" and v.logits.mean_kl.limit == THRESHOLDS["bfloat16"]["mean_kl"]
    merged = load_file(tmp_path / "merged" / "model.safetensors")
    assert all(t.dtype == torch.bfloat16 for t in merged.values())


def test_quantized_training_then_merge_into_full_precision_fails_by_a_wide_margin(trained_base, tmp_path,
                                                                                   monkeypatch, capsys):
    from hone.cli import main

    data = write_jsonl(tmp_path / "more.jsonl", addition_rows(320, seed=1))
    cfg = TrainConfig(method="lora", lora_r=8, lora_alpha=16, learning_rate=2e-3, per_device_batch_size=32,
                      max_steps=20, quantize_base="fake-nf4", allow_quantized_base=True, quant_group_size=64)
    adapter = run_train(cfg, data, trained_base, tmp_path / "qlora").folder
    quant = json.loads((adapter / "lineage.json").read_text())["base"]["quantization"]
    assert quant["method"] == "fake-nf4" and quant["group_size"] == 64 and len(quant["modules"]) == 14

    with pytest.raises(HoneError, match="trained on a quantized base.*--dequantized-base"):
        run_merge(MergeConfig(), trained_base, adapter, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()

    monkeypatch.setattr(sys, "argv", ["hone", "merge", "--base", str(trained_base), "--adapter", str(adapter),
                                      "-o", str(tmp_path / "corrupt"), "--force"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "FORCED" in err and "NOT clean" in err and "mean KL divergence" in err
    report = json.loads((tmp_path / "corrupt" / REPORT_FILE).read_text())
    assert sorted(p.name for p in (tmp_path / "corrupt").iterdir()) == [REPORT_FILE]  # no usable-looking model
    logits = report["verification"]["logits"]
    assert logits["mean_kl"]["value"] > 100 * logits["mean_kl"]["limit"]
    assert logits["max_abs_logit_diff"]["value"] > 10 * logits["max_abs_logit_diff"]["limit"]
    assert "quantized as in training" in report["verification"]["reference"]

    good = run_merge(MergeConfig(dequantized_base=True), trained_base, adapter, tmp_path / "good")
    clean = good.report.verification.logits
    assert clean.mean_kl.value < 1e-4 * logits["mean_kl"]["value"]
    assert clean.greedy_identical.value == 1.0
    # The standalone check agrees, and rejects the same adapter against a merge into the unquantized base.
    verify_merge(trained_base, adapter, tmp_path / "good")
    run_merge(MergeConfig(force=True, verify=False), trained_base, adapter, tmp_path / "unverified")
    with pytest.raises(HoneError, match="NOT clean.*mean KL"):
        verify_merge(trained_base, adapter, tmp_path / "unverified")


def test_refusals_leave_nothing_behind(tiny_model_dir, tmp_path):
    adapter = peft_adapter(tiny_model_dir, tmp_path / "adapter", r=4, lora_alpha=8, target_modules=["q_proj"])
    # The wrong base: a lineage whose hash does not match.
    (adapter / "lineage.json").write_text(json.dumps({"base": {"weights_sha256": "0" * 64, "path": "elsewhere"}}))
    with pytest.raises(HoneError, match="not the base the adapter was trained on.*--force"):
        run_merge(MergeConfig(), tiny_model_dir, adapter, tmp_path / "out")
    (adapter / "lineage.json").unlink()

    from hone.models.tiny import build_tiny_model

    wider = build_tiny_model(tmp_path / "wider", hidden_size=64, intermediate_size=128)
    with pytest.raises(HoneError, match=r"q_proj.weight is \(64, 64\) in the base but the adapter's update is"):
        run_merge(MergeConfig(), wider, adapter, tmp_path / "out")

    no_config = tmp_path / "no_config"
    no_config.mkdir()
    (no_config / "adapter_model.safetensors").write_bytes((adapter / "adapter_model.safetensors").read_bytes())
    with pytest.raises(HoneError, match="not a PEFT adapter"):
        run_merge(MergeConfig(), tiny_model_dir, no_config, tmp_path / "out")

    empty_base = tmp_path / "empty_base"
    empty_base.mkdir()
    (empty_base / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    with pytest.raises(HoneError, match="no weights"):
        run_merge(MergeConfig(), empty_base, adapter, tmp_path / "out")

    with pytest.raises(HoneError, match="outside the base"):
        run_merge(MergeConfig(), tiny_model_dir, adapter, tiny_model_dir / "merged")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(HoneError, match="already exists"):
        run_merge(MergeConfig(), tiny_model_dir, adapter, tmp_path / "taken")
    assert not (tmp_path / "out").exists() and (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    assert not list(tmp_path.glob(".*merging"))


def test_untrained_adapter_fails_the_zero_update_check(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj"])).save_pretrained(
        tmp_path / "adapter")  # PEFT's default init: B = 0
    with pytest.raises(HoneError, match="2 adapter modules with a zero update"):
        run_merge(MergeConfig(), tiny_model_dir, tmp_path / "adapter", tmp_path / "merged")
    assert [p.name for p in (tmp_path / "merged").iterdir()] == [REPORT_FILE]


def test_merge_returns_its_typed_result_and_skips_an_identical_second_run(tiny_model_dir, tmp_path):
    from hone.merge.run import MergeResult
    from hone.merge.report import MergeReport

    adapter = peft_adapter(tiny_model_dir, tmp_path / "adapter", r=4, lora_alpha=8, target_modules=["q_proj"])
    first = run_merge(MergeConfig(), tiny_model_dir, adapter, tmp_path / "merged")
    assert isinstance(first, MergeResult) and not first.skipped
    assert first.counts == {"lora_modules": 2, "tensors_written": 2, "shards": 1}
    assert first.outputs == {"model": tmp_path / "merged", "report": tmp_path / "merged" / REPORT_FILE}
    assert first.report.verification.clean and first.report == MergeReport.read(tmp_path / "merged" / REPORT_FILE)
    again = run_merge(MergeConfig(), tiny_model_dir, adapter, tmp_path / "merged")
    assert again.skipped and again.report == first.report and again.counts == first.counts
    with pytest.raises(HoneError, match="holds a merge of other inputs or settings.*verify.*--restart"):
        run_merge(MergeConfig(verify=False), tiny_model_dir, adapter, tmp_path / "merged")
    redone = run_merge(MergeConfig(verify=False, restart=True), tiny_model_dir, adapter, tmp_path / "merged")
    assert not redone.skipped and redone.report.status == "unverified" and redone.report.verification is None
