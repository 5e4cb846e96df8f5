"""The chat contract on a tokenizer shaped like SmolLM2's: ChatML with a default system prompt, `<|im_end|>` as
EOS with a pad token that may differ from it, and prompts near the end of the context."""

from __future__ import annotations

import pytest

from chatml_support import build_chatml_model
from hone.chat import encode, encode_training, extract_answer, render_prompt, stop_token_ids
from hone.models.loading import load_tokenizer

DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CHAT = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "2 + 3 = 5"}]


@pytest.fixture(scope="module", params=["<|endoftext|>", "<|im_end|>"], ids=["pad-endoftext", "pad-is-eos"])
def chatml(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("chatml") / "model"
    build_chatml_model(folder, pad_token=request.param, max_positions=256)
    return folder, load_tokenizer(folder, padding_side="right")


def test_default_system_prompt_is_rendered_the_same_for_training_and_generation(chatml):
    _, tok = chatml
    prompt = render_prompt(tok, CHAT[:1])
    assert prompt.startswith(f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\n")
    assert prompt.endswith("<|im_start|>assistant\n")
    enc = encode_training(tok, CHAT)  # raises if the prompt part differs token for token
    ids, mask = enc["input_ids"], enc["completion_mask"]
    assert ids[: len(encode(tok, prompt))] == encode(tok, prompt)
    answer = [t for t, m in zip(ids, mask) if m]
    assert tok.decode(answer) == "2 + 3 = 5<|im_end|>"  # the answer and EOS, not the template's trailing newline
    assert ids[-1] == tok.convert_tokens_to_ids("<|im_end|>") == tok.eos_token_id
    # a conversation with its own system prompt gets no default one
    own = render_prompt(tok, [{"role": "system", "content": "Be terse."}, *CHAT[:1]])
    assert DEFAULT_SYSTEM not in own and own.count("<|im_start|>system") == 1


def test_the_loss_sees_the_answer_and_eos_whatever_the_pad_token(chatml):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from hone.train.data import tokenize

    _, tok = chatml
    short = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    rows, stats = tokenize(tok, [CHAT, short], max_length=None)
    assert stats["examples"] == 2 and stats["truncated"] == 0
    batch = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id)(rows)
    eos = tok.eos_token_id
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        labels = batch["labels"][i].tolist()
        kept = [t for t in labels[:n] if t != -100]
        assert kept[-1] == eos  # EOS is learned even when the pad token *is* EOS (SmolLM2's own setting)
        assert tok.decode(kept).endswith("<|im_end|>") and "system" not in tok.decode(kept)
        assert all(t == -100 for t in labels[n:])  # padding never counts
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (len(labels) - n)


def test_generation_stops_at_im_end_and_answers_are_cut_there(chatml):
    _, tok = chatml
    stops = stop_token_ids(tok)
    assert tok.convert_tokens_to_ids("<|im_end|>") in stops and tok.convert_tokens_to_ids("<|endoftext|>") in stops
    assert extract_answer(tok, "5<|im_end|>\n<|im_start|>user\nmore") == "5"


def test_prompts_near_and_past_the_context(chatml):
    from hone.generate.base import GenParams, Request
    from hone.generate.hf import HFGenerator

    folder, _ = chatml
    gen = HFGenerator.from_dir(str(folder), device="cpu")
    tok = gen.tokenizer
    base = len(encode(tok, render_prompt(tok, [{"role": "user", "content": ""}])))
    per_word = len(encode(tok, render_prompt(tok, [{"role": "user", "content": "seven " * 10}]))) - base
    near = "seven " * ((256 - base - 8) * 10 // per_word)  # a few tokens short of the 256-token context
    past = "seven " * (300 * 10 // per_word)
    requests = [Request("near", 0, [{"role": "user", "content": near}]),
                Request("past", 0, [{"role": "user", "content": past}]),
                Request("short", 0, [{"role": "user", "content": "Hi"}])]
    out = {g.id: g for g in gen.generate(requests, GenParams(max_new_tokens=64, batch_size=3))}
    n_near = len(encode(tok, render_prompt(tok, requests[0].messages)))
    assert 240 < n_near < 256
    assert out["near"].finish_reason in ("length", "stop") and out["near"].tokens <= 256 - n_near
    assert out["past"].finish_reason == "error" and "context" in out["past"].output
    assert out["short"].finish_reason in ("length", "stop") and out["short"].tokens > 0


def test_training_rows_past_max_length_are_cut_and_counted(chatml):
    from hone.train.data import tokenize

    _, tok = chatml
    long = [{"role": "user", "content": "Count."}, {"role": "assistant", "content": "one two three " * 40}]
    full = len(encode_training(tok, long)["input_ids"])
    rows, stats = tokenize(tok, [long, CHAT], max_length=full - 10)
    assert stats["truncated"] == 1 and len(rows[0]["input_ids"]) == full - 10
    prompt_only = [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}]
    rows, stats = tokenize(tok, [prompt_only], max_length=64)
    assert stats["dropped"] == 1 and not rows  # nothing of the answer fits: the row is dropped, not trained empty
