"""`hone train`: rows through the chat contract, a tiny model that learns, lineage, resume, clear refusals."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file
from train_support import one_torch_thread, parity_rows, write_jsonl  # noqa: F401 - a fixture

from hone.errors import HoneError
from hone.train.data import read_conversations, tokenize
from hone.train.config import TrainConfig
from hone.train.sft import run_train


def accuracy(model_dir: Path, numbers, adapter: Path | None = None) -> tuple[float, list[str]]:
    from hone.generate.base import GenParams, Request
    from hone.generate.hf import HFGenerator

    gen = HFGenerator.from_dir(str(model_dir), device="cpu")
    if adapter is not None:
        from peft import PeftModel

        gen.model = PeftModel.from_pretrained(gen.model, str(adapter)).eval()
    requests = [Request(id=str(n), sample=0, messages=[{"role": "user", "content": f"Is {n} even?"}])
                for n in numbers]
    outs = sorted(gen.generate(requests, GenParams(max_new_tokens=4, batch_size=64)), key=lambda g: int(g.id))
    right = sum(g.output == ("yes" if int(g.id) % 2 == 0 else "no") for g in outs)
    return right / len(outs), [g.output for g in outs]


def test_rows_go_through_the_chat_template_with_eos_and_answer_only_labels(tiny_tokenizer, tmp_path):
    data = write_jsonl(tmp_path / "rows.jsonl", [
        {"id": "a", "source": "seed", "messages": [{"role": "system", "content": "Be brief."},
                                                   {"role": "user", "content": "2+2?"},
                                                   {"role": "assistant", "content": "4"}]},
        {"prompt": "3+3?", "completion": "6"},
        {"prompt": [{"role": "user", "content": "5+5?"}], "completion": [{"role": "assistant", "content": "10"}]},
    ])
    convs = read_conversations(data)
    rows, stats = tokenize(tiny_tokenizer, convs, max_length=None)
    assert stats["examples"] == 3 and stats["dropped"] == 0
    for row, answer in zip(rows, ["4", "6", "10"]):
        learned = [t for t in row["labels"] if t != -100]
        assert learned[-1] == tiny_tokenizer.eos_token_id
        assert tiny_tokenizer.decode(learned[:-1]).strip() == answer
        n_prompt = row["labels"].index(learned[0])
        assert all(t == -100 for t in row["labels"][:n_prompt])
        assert row["labels"][n_prompt:] == row["input_ids"][n_prompt:]
    assert tiny_tokenizer.decode(rows[1]["input_ids"]).startswith("<|begin_of_text|><|start_header_id|>user")

    cut, cut_stats = tokenize(tiny_tokenizer, convs, max_length=12)  # prompts alone exceed 12 tokens
    assert cut == [] and cut_stats["dropped"] == 3

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "completion": "y"}\n{"question": "no answer"}\n')
    with pytest.raises(HoneError, match=r"bad.jsonl:2: a training row needs `messages`"):
        read_conversations(bad)
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    with pytest.raises(HoneError, match=r"bad.jsonl:1: the conversation must end with an assistant message"):
        read_conversations(bad)
    bad.write_text('{"messages": [{"role": "robot", "content": "hi"}]}\n')
    with pytest.raises(HoneError, match=r"bad.jsonl:1: `messages`.0.role"):
        read_conversations(bad)


def test_lora_learns_a_task_and_the_merged_model_scores_the_same(tiny_model_dir, tmp_path):
    from hone.merge.run import MergeConfig, run_merge

    rng = random.Random(0)
    data = write_jsonl(tmp_path / "parity.jsonl", parity_rows(rng.randint(0, 999) for _ in range(400)))
    held_out = [rng.randint(1000, 9999) for _ in range(40)]
    before, _ = accuracy(tiny_model_dir, held_out)
    cfg = TrainConfig(method="lora", lora_r=16, lora_alpha=32, learning_rate=3e-3, per_device_batch_size=32,
                      max_steps=100, logging_steps=10)
    adapter = run_train(cfg, data, tiny_model_dir, tmp_path / "adapter").folder

    lineage = json.loads((adapter / "lineage.json").read_text())
    from hone.models.loading import weights_sha256

    assert lineage["kind"] == "adapter"
    assert lineage["base"]["weights_sha256"] == weights_sha256(tiny_model_dir)
    assert lineage["base"]["train_dtype"] == "float32" and lineage["base"]["quantization"] is None
    assert lineage["data"]["examples"] == 400 and len(lineage["data"]["sha256"]) == 64
    assert lineage["config"]["lora_r"] == 16 and {"torch", "trl", "peft"} <= set(lineage["versions"])
    t = lineage["training"]
    assert t["steps"] == 100 and t["final_loss"] < t["first_loss"]
    assert not (adapter / "checkpoints").exists() and not (adapter / "training_args.bin").exists()

    after, adapter_outputs = accuracy(tiny_model_dir, held_out, adapter=adapter)
    assert before < 0.3 and after >= 0.9
    run_merge(MergeConfig(), tiny_model_dir, adapter, tmp_path / "merged")
    merged_acc, merged_outputs = accuracy(tmp_path / "merged", held_out)
    assert merged_acc == after and merged_outputs == adapter_outputs

    stamp = (adapter / "lineage.json").stat().st_mtime_ns
    assert run_train(cfg, data, tiny_model_dir, tmp_path / "adapter").folder == adapter  # same inputs: skipped
    assert (adapter / "lineage.json").stat().st_mtime_ns == stamp
    with pytest.raises(HoneError, match="already holds a finished model.*learning_rate differ"):
        run_train(cfg.model_copy(update={"learning_rate": 1e-3}), data, tiny_model_dir, tmp_path / "adapter")


def test_full_disk_before_a_checkpoint_stops_cleanly_and_the_run_resumes_identically(tiny_model_dir, tmp_path,
                                                                                    monkeypatch):
    import hone.train.callbacks as callbacks

    data = write_jsonl(tmp_path / "parity.jsonl", parity_rows(range(96)))
    cfg = TrainConfig(method="full", learning_rate=1e-3, per_device_batch_size=8, max_steps=6, save_steps=3,
                      save_total_limit=1)
    out = tmp_path / "run"
    first_checkpoint = out / "checkpoints" / "checkpoint-3"
    real_free = callbacks.free_bytes
    monkeypatch.setattr(callbacks, "free_bytes", lambda p: 0 if first_checkpoint.exists() else real_free(p))
    with pytest.raises(HoneError, match="not enough free disk for the checkpoint at step 6.*checkpoint-3 is intact"):
        run_train(cfg, data, tiny_model_dir, out)
    assert (first_checkpoint / "trainer_state.json").exists()
    assert not (out / "lineage.json").exists() and not (out / "model.safetensors").exists()

    with pytest.raises(HoneError, match="checkpoints of a run with other inputs or settings.*seed differ"):
        run_train(cfg.model_copy(update={"seed": 1}), data, tiny_model_dir, out)

    monkeypatch.setattr(callbacks, "free_bytes", real_free)
    run_train(cfg, data, tiny_model_dir, out)
    assert json.loads((out / "lineage.json").read_text())["training"]["resumed_from"] == "checkpoint-3"
    straight = run_train(cfg, data, tiny_model_dir, tmp_path / "straight").folder
    resumed, uninterrupted = load_file(out / "model.safetensors"), load_file(straight / "model.safetensors")
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)


def test_packing_trains_and_bad_settings_are_refused(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from hone.cli import main

    data = write_jsonl(tmp_path / "parity.jsonl", parity_rows(range(64)))
    cfg = TrainConfig(method="lora", per_device_batch_size=4, max_steps=2, packing=True, max_length=128)
    packed = run_train(cfg, data, tiny_model_dir, tmp_path / "packed").folder
    assert json.loads((packed / "lineage.json").read_text())["training"]["steps"] == 2

    with pytest.raises(ValidationError, match="allow_quantized_base"):
        TrainConfig(quantize_base="fake-nf4")
    with pytest.raises(ValidationError, match="method: lora"):
        TrainConfig(method="full", quantize_base="fake-nf4", allow_quantized_base=True)
    with pytest.raises(HoneError, match="must not be the base folder or inside it"):
        run_train(cfg, data, tiny_model_dir, tiny_model_dir / "out")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    with pytest.raises(HoneError, match="no weights"):
        run_train(cfg, data, empty, tmp_path / "x")

    config = tmp_path / "train.yaml"
    config.write_text("method: lora\nlora_r: 8\nlearning_rat: 0.001\n")
    monkeypatch.setattr(sys, "argv", ["hone", "train", "--base", str(tiny_model_dir), "--data", str(data),
                                      "-o", str(tmp_path / "y"), "--config", str(config)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    assert "train.yaml:3: key `learning_rat`: Extra inputs are not permitted" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


def test_train_returns_its_typed_result_and_skips_an_identical_second_run(tiny_model_dir, tmp_path):
    from hone.train.result import TrainResult

    data = write_jsonl(tmp_path / "parity.jsonl", parity_rows(range(24)))
    cfg = TrainConfig(method="lora", lora_r=4, lora_alpha=8, per_device_batch_size=8, max_steps=2)
    first = run_train(cfg, data, tiny_model_dir, tmp_path / "adapter")
    assert isinstance(first, TrainResult) and not first.skipped
    assert first.outputs == {"adapter": tmp_path / "adapter"} and first.counts == {"rows": 24, "steps": 2}
    assert first.report.kind == "adapter" and first.report.summary().startswith("2 steps")
    again = run_train(cfg, data, tiny_model_dir, tmp_path / "adapter")
    assert again.skipped and again.report == first.report and again.counts == first.counts
    other = cfg.model_copy(update={"seed": 1})
    with pytest.raises(HoneError, match="already holds a finished model.*seed differ.*--restart"):
        run_train(other, data, tiny_model_dir, tmp_path / "adapter")
    redone = run_train(other.model_copy(update={"restart": True}), data, tiny_model_dir, tmp_path / "adapter")
    assert not redone.skipped and redone.report.config["seed"] == 1 and "restart" not in redone.report.config
