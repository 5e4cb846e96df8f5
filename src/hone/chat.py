"""The one prompt-format contract.

Every prompt Hone shows a model (training, generation, critique, benchmark) is rendered here, through the
tokenizer's own chat template. Training text ends with EOS; the assistant-token mask marks what the loss sees;
answers are cut at EOS / end-of-turn. A tokenizer without a chat template is an error, never a fallback.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

from hone.errors import HoneError

Messages = Sequence[dict[str, str]]

# End-of-turn markers of common chat templates; whichever exist in the vocabulary also stop generation.
END_OF_TURN_TOKENS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>",
                      "<|end_of_text|>")


def require_chat_template(tokenizer: Any, where: str = "tokenizer") -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise HoneError(
            f"{where}: the tokenizer has no chat template; Hone renders every prompt through the model's own "
            "template and will not guess one (add `chat_template` to tokenizer_config.json)"
        )
    if tokenizer.eos_token_id is None:
        raise HoneError(f"{where}: the tokenizer has no EOS token")


def _plain(messages: Messages) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def render_prompt(tokenizer: Any, messages: Messages) -> str:
    """The text a model sees before it answers: the conversation plus the assistant header."""
    require_chat_template(tokenizer)
    if not messages or messages[-1]["role"] == "assistant":
        raise HoneError("render_prompt: the conversation must end with a user (or system) message")
    return tokenizer.apply_chat_template(_plain(messages), tokenize=False, add_generation_prompt=True)


def render_training(tokenizer: Any, messages: Messages) -> str:
    """A whole conversation ending in the assistant's answer, terminated by EOS."""
    require_chat_template(tokenizer)
    if not messages or messages[-1]["role"] != "assistant":
        raise HoneError("render_training: the conversation must end with an assistant message")
    text = tokenizer.apply_chat_template(_plain(messages), tokenize=False, add_generation_prompt=False)
    eos = tokenizer.eos_token
    stripped = text.rstrip("\n")
    return stripped if stripped.endswith(eos) else text + eos


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of rendered text; the template already holds BOS, so no special tokens are added."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_training(tokenizer: Any, messages: Messages) -> dict[str, list[int]]:
    """input_ids of the full example and `completion_mask` (1 on the final assistant answer and its EOS).

    The prompt part is tokenized exactly as generation will see it; if the template renders the prompt
    differently inside the full conversation, that is an error, not a silent mismatch.
    """
    prompt_ids = encode(tokenizer, render_prompt(tokenizer, messages[:-1]))
    full_ids = encode(tokenizer, render_training(tokenizer, messages))
    if full_ids[: len(prompt_ids)] != prompt_ids:
        raise HoneError(
            "chat template: the training rendering does not start with the generation prompt token for token; "
            "the model would be trained on a different format than it is asked in"
        )
    if full_ids[-1] != tokenizer.eos_token_id:
        raise HoneError("chat template: the training rendering does not end with EOS")
    mask = [0] * len(prompt_ids) + [1] * (len(full_ids) - len(prompt_ids))
    return {"input_ids": full_ids, "completion_mask": mask}


def stop_token_ids(tokenizer: Any) -> list[int]:
    """EOS plus every end-of-turn token the vocabulary knows."""
    ids = {tokenizer.eos_token_id}
    vocab = tokenizer.get_vocab()
    for tok in END_OF_TURN_TOKENS:
        if tok in vocab:
            ids.add(vocab[tok])
    return sorted(i for i in ids if i is not None)


def cut_at_stop(tokenizer: Any, token_ids: Sequence[int]) -> tuple[list[int], bool]:
    """The ids before the first stop token, and whether a stop token was found."""
    stops = set(stop_token_ids(tokenizer))
    for i, t in enumerate(token_ids):
        if t in stops:
            return list(token_ids[:i]), True
    return list(token_ids), False


class Answer(NamedTuple):
    text: str
    tokens: int  # generated tokens up to and including the stop token
    stopped: bool  # the model ended its turn (False: it ran into the token limit)


def decode_answer(tokenizer: Any, token_ids: Sequence[int]) -> Answer:
    """The answer in generated ids, cut at the first stop token, special tokens dropped, trimmed: what an engine
    records and a grader reads."""
    kept, stopped = cut_at_stop(tokenizer, token_ids)
    return Answer(tokenizer.decode(kept, skip_special_tokens=True).strip(), len(kept) + stopped, stopped)


def extract_answer(tokenizer: Any, text: str) -> str:
    """Strip what the template adds around an answer: cut at the first EOS / end-of-turn marker, trim."""
    cut = len(text)
    vocab = tokenizer.get_vocab()
    for tok in {tokenizer.eos_token, *(t for t in END_OF_TURN_TOKENS if t in vocab)}:
        if tok and tok in text:
            cut = min(cut, text.index(tok))
    return text[:cut].strip()
