"""Real QLoRA on CPU: LoRA trained against a bitsandbytes 4-bit NF4 base, recorded in the lineage, merged only
into the dequantized base that Hone rebuilds with bitsandbytes' own round trip, and verified."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from hone.errors import HoneError
from hone.merge.run import MergeConfig, run_merge
from hone.models.quantize import load_nf4_base, roundtrip
from hone.train.config import TrainConfig
from hone.train.sft import run_train

from train_support import addition_rows, one_torch_thread, write_jsonl  # noqa: F401 - a fixture

pytest.importorskip("bitsandbytes")


def test_the_rebuilt_base_is_exactly_what_bitsandbytes_trains_on(tiny_model_dir):
    import bitsandbytes.functional as F

    model, spec = load_nf4_base(tiny_model_dir, "float32", {"": "cpu"}, trust_remote_code=False)
    assert spec.method == "nf4" and spec.group_size == 64 and len(spec.modules) == 14
    full = load_file(tiny_model_dir / "model.safetensors")
    params = dict(model.named_parameters())
    for name in spec.modules:
        p = params[name]
        seen = F.dequantize_4bit(p.data, p.quant_state).to(torch.float32)
        assert torch.equal(seen, roundtrip(full[name], 64, "nf4", "float32")), name
        assert not torch.equal(seen, full[name])  # 4 bits lose something: the base really is quantized


def test_config_spells_it_quantization_and_requires_consent():
    assert TrainConfig(quantization="nf4", allow_quantized_base=True).quantize_base == "nf4"
    with pytest.raises(ValueError, match="allow_quantized_base"):
        TrainConfig(quantization="nf4")
    with pytest.raises(ValueError, match="blocks of 64"):
        TrainConfig(quantization="nf4", allow_quantized_base=True, quant_group_size=32)


def test_nf4_lora_merges_only_into_the_dequantized_base_and_verifies(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "add.jsonl", addition_rows(256, seed=3))
    cfg = TrainConfig(method="lora", lora_r=8, lora_alpha=16, learning_rate=2e-3, per_device_batch_size=16,
                      max_steps=12, quantize_base="nf4", allow_quantized_base=True)
    adapter = run_train(cfg, data, tiny_model_dir, tmp_path / "qlora").folder
    lineage = json.loads((adapter / "lineage.json").read_text())
    quant = lineage["base"]["quantization"]
    assert quant["method"] == "nf4" and quant["dtype"] == "float32" and len(quant["modules"]) == 14
    assert lineage["training"]["steps"] == 12

    with pytest.raises(HoneError, match="trained on a quantized base.*--dequantized-base"):
        run_merge(MergeConfig(), tiny_model_dir, adapter, tmp_path / "refused")
    report = run_merge(MergeConfig(dequantized_base=True), tiny_model_dir, adapter, tmp_path / "merged").report
    assert report.status == "verified" and report.merge.into == "dequantized base"
    merged = json.loads((tmp_path / "merged" / "lineage.json").read_text())
    assert merged["merged_into"]["dequantized"] is True and merged["base"]["quantization"]["method"] == "nf4"
    assert "quantized as in training" in report.verification.reference
    logits = report.verification.logits
    assert logits.top1_agreement.value == 1.0
