import pytest

from hone.chat import (cut_at_stop, encode, encode_training, extract_answer, render_prompt, render_training,
                       stop_token_ids)
from hone.errors import HoneError

CONVO = [{"role": "system", "content": "You add numbers."},
         {"role": "user", "content": "What is 12 + 30?"},
         {"role": "assistant", "content": "12 + 30 = 42. The answer is 42."}]


def test_training_rendering_extends_generation_prompt_token_for_token(tiny_tokenizer):
    prompt_ids = encode(tiny_tokenizer, render_prompt(tiny_tokenizer, CONVO[:-1]))
    enc = encode_training(tiny_tokenizer, CONVO)
    assert enc["input_ids"][: len(prompt_ids)] == prompt_ids
    assert enc["input_ids"][-1] == tiny_tokenizer.eos_token_id
    assert enc["input_ids"][0] == tiny_tokenizer.bos_token_id
    assert enc["input_ids"].count(tiny_tokenizer.bos_token_id) == 1  # the template's BOS, not a second one
    # Loss sees exactly the answer and its end-of-turn, nothing of the prompt.
    masked = [t for t, m in zip(enc["input_ids"], enc["completion_mask"]) if m]
    assert tiny_tokenizer.decode(masked) == "12 + 30 = 42. The answer is 42.<|eot_id|>"
    assert sum(enc["completion_mask"]) == len(enc["input_ids"]) - len(prompt_ids)


def test_training_text_ends_with_eos_when_template_does_not(tiny_tokenizer):
    text = render_training(tiny_tokenizer, CONVO)
    assert text.endswith(tiny_tokenizer.eos_token)
    assert text.count(tiny_tokenizer.eos_token) == 3  # one per turn, none doubled


def test_generation_prompt_ends_with_assistant_header(tiny_tokenizer):
    text = render_prompt(tiny_tokenizer, CONVO[:2])
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    with pytest.raises(HoneError):
        render_prompt(tiny_tokenizer, CONVO)
    with pytest.raises(HoneError):
        render_training(tiny_tokenizer, CONVO[:2])


def test_tokenizer_without_template_is_an_error(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = None
    with pytest.raises(HoneError, match="no chat template"):
        render_prompt(tok, CONVO[:2])


def test_answers_are_cut_at_end_of_turn(tiny_tokenizer):
    eot = tiny_tokenizer.convert_tokens_to_ids("<|eot_id|>")
    ids = encode(tiny_tokenizer, "42") + [eot] + encode(tiny_tokenizer, "junk")
    kept, stopped = cut_at_stop(tiny_tokenizer, ids)
    assert stopped and tiny_tokenizer.decode(kept) == "42"
    assert cut_at_stop(tiny_tokenizer, encode(tiny_tokenizer, "42"))[1] is False
    assert eot in stop_token_ids(tiny_tokenizer)
    assert extract_answer(tiny_tokenizer, "  42 <|eot_id|><|start_header_id|>user") == "42"
