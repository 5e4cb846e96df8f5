"""DPO on PreferencePair JSONL: pairs go through the chat contract, and the model learns the preference."""

from __future__ import annotations

import json
import random

import pytest
import torch
from train_support import one_torch_thread  # noqa: F401 - a fixture

from hone.chat import encode, render_prompt
from hone.errors import HoneError
from hone.records import PreferencePair, write_records
from hone.train.dpo import DPOTrainConfig, run_dpo, tokenize_pairs


def parity_pairs(numbers) -> list[PreferencePair]:
    return [PreferencePair(id=f"p{n}", prompt=[{"role": "user", "content": f"Is {n} even?"}],
                           chosen="yes" if n % 2 == 0 else "no", rejected="no" if n % 2 == 0 else "yes")
            for n in numbers]


def preference_accuracy(model, tokenizer, pairs: list[PreferencePair]) -> float:
    """Share of pairs where the model gives the chosen answer a higher log-probability than the rejected one."""
    rows, _ = tokenize_pairs(tokenizer, pairs, max_length=None)
    wins = 0
    with torch.no_grad():
        for row in rows:
            scores = []
            for answer in (row["chosen_ids"], row["rejected_ids"]):
                ids = torch.tensor([row["prompt_ids"] + answer])
                logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1)
                targets = ids[0, 1:]
                scores.append(logp[-len(answer):].gather(1, targets[-len(answer):, None]).sum().item())
            wins += scores[0] > scores[1]
    return wins / len(rows)


def test_pairs_are_tokenized_through_the_chat_contract(tiny_tokenizer):
    pairs = parity_pairs([4]) + [PreferencePair(id="same", prompt=[{"role": "user", "content": "hi"}],
                                                chosen="hello", rejected=" hello ")]
    rows, stats = tokenize_pairs(tiny_tokenizer, pairs, max_length=None)
    assert stats == {"examples": 1, "identical_dropped": 1, "too_long_dropped": 0}
    row = rows[0]
    prompt = [{"role": "user", "content": "Is 4 even?"}]
    assert row["prompt_ids"] == encode(tiny_tokenizer, render_prompt(tiny_tokenizer, prompt))
    assert row["chosen_ids"][-1] == row["rejected_ids"][-1] == tiny_tokenizer.eos_token_id
    assert tiny_tokenizer.decode(row["chosen_ids"][:-1]).strip() == "yes"
    assert tiny_tokenizer.decode(row["rejected_ids"][:-1]).strip() == "no"
    assert tokenize_pairs(tiny_tokenizer, pairs[:1], max_length=len(row["prompt_ids"]))[1]["too_long_dropped"] == 1


def test_dpo_lora_learns_the_preference(tiny_model_dir, tiny_tokenizer, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    rng = random.Random(0)
    data = tmp_path / "pairs.jsonl"
    write_records(data, parity_pairs(rng.randint(0, 999) for _ in range(256)))
    held_out = parity_pairs(rng.randint(1000, 9999) for _ in range(40))
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    before = preference_accuracy(base, tiny_tokenizer, held_out)

    cfg = DPOTrainConfig(method="lora", lora_r=16, lora_alpha=32, learning_rate=3e-3, beta=0.5,
                         per_device_batch_size=16, max_steps=80)
    out = run_dpo(cfg, data, tiny_model_dir, tmp_path / "dpo").folder
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["objective"] == "dpo" and lineage["data"]["examples"] == 256
    assert lineage["training"]["final_loss"] < lineage["training"]["first_loss"]
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(out)).eval()
    after = preference_accuracy(tuned, tiny_tokenizer, held_out)
    assert before < 0.75 and after >= 0.9

    with pytest.raises(HoneError, match="already holds a finished model.*beta"):
        run_dpo(cfg.model_copy(update={"beta": 0.1}), data, tiny_model_dir, tmp_path / "dpo")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "prompt": [{"role": "user", "content": "q"}], "chosen": "a"}\n')
    with pytest.raises(HoneError, match=r"bad.jsonl:1: rejected"):
        run_dpo(cfg, bad, tiny_model_dir, tmp_path / "bad")
