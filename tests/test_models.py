import json
import shutil

import pytest

from hone.errors import HoneError
from hone.models.loading import inspect_model_dir, load_model, load_tokenizer, weights_sha256


def test_tiny_model_loads_with_auto_classes_offline(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    assert model.config.model_type == "llama"
    assert 300_000 < sum(p.numel() for p in model.parameters()) < 1_000_000
    assert tok.chat_template and tok.eos_token == "<|eot_id|>" and tok.padding_side == "left"
    assert list(tiny_model_dir.glob("*.safetensors"))


def test_inspect_reports_dtype_and_quantization(tiny_model_dir, tmp_path):
    info = inspect_model_dir(tiny_model_dir)
    assert info.dtype == "float32" and not info.quantized and info.describe_quantization() == "none"
    q = tmp_path / "q"
    shutil.copytree(tiny_model_dir, q)
    cfg = json.loads((q / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True,
                                  "bnb_4bit_quant_type": "nf4"}
    (q / "config.json").write_text(json.dumps(cfg))
    assert inspect_model_dir(q).describe_quantization() == "4-bit (bitsandbytes nf4)"


def test_content_hash_follows_weights_not_names(tiny_model_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert weights_sha256(copy) == weights_sha256(tiny_model_dir)
    w = next(copy.glob("*.safetensors"))
    data = bytearray(w.read_bytes())
    data[-1] ^= 1
    w.write_bytes(bytes(data))
    assert weights_sha256(copy) != weights_sha256(tiny_model_dir)


def test_bad_model_folders(tiny_model_dir, tmp_path):
    with pytest.raises(HoneError, match="no such model folder"):
        inspect_model_dir(tmp_path / "nope")
    with pytest.raises(HoneError, match="no config.json"):
        inspect_model_dir(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(HoneError, match="no weights"):
        inspect_model_dir(empty)
    (empty / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(HoneError, match="safetensors only"):
        inspect_model_dir(empty)
    notemplate = tmp_path / "nt"
    shutil.copytree(tiny_model_dir, notemplate)
    cfg = json.loads((notemplate / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (notemplate / "tokenizer_config.json").write_text(json.dumps(cfg))
    (notemplate / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(HoneError, match="no chat template"):
        load_tokenizer(notemplate)


def test_load_model_defaults_to_fp32_on_cpu(tiny_model_dir):
    import torch

    model = load_model(tiny_model_dir, device="cpu")
    assert next(model.parameters()).dtype == torch.float32 and not model.training
