"""`hone models import`: a GGUF written here with the `gguf` package becomes a Hone base that trains and merges."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch

from chatml_support import CHATML_TEMPLATE, build_chatml_model, write_gguf
from hone.errors import HoneError
from hone.hashing import file_sha256
from hone.models.gguf import import_gguf
from hone.models.loading import load_model, load_tokenizer, weights_sha256
from hone.models.lineage import read_lineage

HONE = [sys.executable, "-m", "hone.cli"]
PROBE = [{"role": "user", "content": "What is 12 + 30?"}]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf")
    model, tok = build_chatml_model(root / "hf", max_positions=256)
    return {"root": root, "model": model, "tok": tok,
            "f32": write_gguf(root / "tiny-f32.gguf", model, tok, quant="F32"),
            "q8": write_gguf(root / "tiny-q8_0.gguf", model, tok, quant="Q8_0")}


def _logits(model, tok, messages=PROBE):
    from hone.chat import encode, render_prompt

    ids = torch.tensor([encode(tok, render_prompt(tok, messages))])
    with torch.no_grad():
        return model(ids).logits[0]


def test_f32_gguf_imports_exactly_and_records_where_it_came_from(source, tmp_path):
    out = tmp_path / "imported"
    import_gguf(source["f32"], out)
    model, tok = load_model(out, device="cpu"), load_tokenizer(out)
    # the tensors (q/k un-permuted, tied head) and the tokenizer come back as they were written
    assert torch.allclose(_logits(model, tok), _logits(source["model"], source["tok"]), atol=1e-5)
    text = "What is 123 + 45? The answer is 168."
    assert tok(text)["input_ids"] == source["tok"](text)["input_ids"]
    assert tok.chat_template == CHATML_TEMPLATE and tok.eos_token == "<|im_end|>"
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["eos_token_id"] == tok.convert_tokens_to_ids("<|im_end|>")
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    lineage = read_lineage(out)
    assert lineage["kind"] == "imported"
    assert lineage["base"]["format"] == "gguf" and lineage["base"]["sha256"] == file_sha256(source["f32"])
    assert lineage["base"]["quantization"]["file_type"] == "ALL_F32"
    assert lineage["dequantized"]["weights_sha256"] == weights_sha256(out)
    assert lineage["tokenizer"]["end_of_turn"] == "<|im_end|>"
    assert [p.name for p in tmp_path.iterdir()] == ["imported"]  # no hidden work folder left


def test_quantized_gguf_is_dequantized_and_loads_in_stock_transformers_and_peft(source, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "q8"
    lineage = import_gguf(source["q8"], out)
    q = lineage["base"]["quantization"]
    assert q["file_type"] == "Q8_0" and q["tensor_types"]["Q8_0"] == 2 * 7 + 1  # 7 matrices a layer + embeddings
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    diff = (_logits(model, tok) - _logits(source["model"], source["tok"])).abs().max().item()
    assert 0 < diff < 0.05  # Q8_0 round trip: close to the original, not equal to it
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    assert peft_model(torch.tensor([[1, 5, 9]])).logits.shape[-1] == len(tok)


def test_bad_inputs_are_one_line_and_leave_nothing(source, tmp_path):
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_bytes(b"PK\x03\x04 a zip, not a gguf")
    no_template = write_gguf(tmp_path / "bare.gguf", source["model"], source["tok"], chat_template=None, quant="F32")
    alien = write_gguf(tmp_path / "alien.gguf", source["model"], source["tok"], quant="F32", architecture="rwkv6")
    cases = [
        ([str(not_gguf)], "not a GGUF file"),
        ([str(tmp_path / "missing.gguf")], "no such file"),
        ([str(alien)], "architecture 'rwkv6' cannot be read by transformers"),
        ([str(no_template)], "has no chat template"),
        ([str(no_template), "--chat-template", str(tmp_path / "none.jinja")], "no such chat template file"),
    ]
    for args, message in cases:  # in process (each CLI start costs seconds); the CLI's own answer once below
        template = args[2] if len(args) > 1 else None
        with pytest.raises(HoneError, match=re.escape(message)) as error:
            import_gguf(args[0], tmp_path / "out", chat_template=template)
        assert "\n" not in str(error.value) and not (tmp_path / "out").exists()
    done = subprocess.run([*HONE, "models", "import", str(alien), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "cannot be read by transformers" in lines[0], done.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    with pytest.raises(HoneError, match="already exists and is not empty"):
        import_gguf(source["f32"], tmp_path)  # a folder with files in it is never written into


def test_a_chat_template_given_by_file_fills_the_gap(source, tmp_path):
    bare = write_gguf(tmp_path / "bare.gguf", source["model"], source["tok"], chat_template=None, quant="F32")
    template = tmp_path / "chatml.jinja"
    template.write_text(CHATML_TEMPLATE)
    done = subprocess.run([*HONE, "models", "import", str(bare), "--chat-template", str(template),
                           "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "end of turn <|im_end|>" in done.stdout
    assert read_lineage(tmp_path / "out")["tokenizer"]["chat_template"] == "given"
    assert load_tokenizer(tmp_path / "out").chat_template == CHATML_TEMPLATE


@pytest.mark.slow
def test_imported_base_trains_merges_verified_and_benchmarks(source, tmp_path):
    from hone.records import Task, write_records

    base = tmp_path / "base"
    assert subprocess.run([*HONE, "models", "import", str(source["q8"]), "-o", str(base)],
                          capture_output=True, text=True).returncode == 0
    rows = [{"messages": [{"role": "user", "content": f"What is {a} + 1?"},
                          {"role": "assistant", "content": str(a + 1)}]} for a in range(40)]
    (tmp_path / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    env_cmds = [
        ["train", "--base", str(base), "--data", str(tmp_path / "sft.jsonl"), "-o", str(tmp_path / "adapter"),
         "--max-steps", "4", "--batch-size", "4", "--lr", "1e-2"],
        ["merge", "--base", str(base), "--adapter", str(tmp_path / "adapter"), "-o", str(tmp_path / "merged")],
    ]
    for args in env_cmds:
        done = subprocess.run([*HONE, *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert "verified clean" in done.stdout
    adapter = read_lineage(tmp_path / "adapter")
    assert adapter["base"]["weights_sha256"] == read_lineage(base)["dequantized"]["weights_sha256"]
    assert adapter["base"]["origin"]["format"] == "gguf"  # the adapter knows its base came from a quantized file
    tasks = [Task(id=f"t{i}", kind="math", prompt=f"What is {i} + 1?", reference=str(i + 1)) for i in range(4)]
    write_records(tmp_path / "tasks.jsonl", tasks)
    done = subprocess.run([*HONE, "bench", "--model", str(tmp_path / "merged"), "--tasks",
                           str(tmp_path / "tasks.jsonl"), "-o", str(tmp_path / "bench"), "--max-new-tokens", "8"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "bench" / "bench.json").read_text())
