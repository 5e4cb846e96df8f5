"""A tiny Llama-architecture model and a byte-level BPE tokenizer, built locally with no network.

Tests and the demo use it. Digits are split one per token, which is what lets a model this small learn
arithmetic (../shared/FACTS.md).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Iterable

LLAMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                  "<|eot_id|>", "<|pad|>"]

_WORDS = ("the a an of to and in is was for on that with as it by at from this be are or have has had not "
          "what how many much each total if then so there their they he she his her we you your more less "
          "than all some one two three four five six seven eight nine ten hundred thousand per day days week "
          "year years dollars cents apples books pages students hours minutes miles price cost sum plus minus "
          "times divided equal answer question solve step first next finally therefore because left remaining "
          "buys sells gives gets makes needs spends earns has costs def return for while if else elif import "
          "print range len list dict str int float True False None self class lambda yield assert").split()


def default_corpus(n_lines: int = 600, seed: int = 0) -> list[str]:
    """Local text for training the tokenizer: chat roles, words, numbers, arithmetic, code-ish lines."""
    rng = random.Random(seed)
    # Role names and stock phrases become single tokens, which keeps the chat template cheap to train on.
    lines = ["user", "assistant", "system", "The answer is What is Compute Calculate plus minus"] * 50
    for _ in range(n_lines):
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 14)))
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        lines.append(f"{words.capitalize()}? {a} + {b} = {a + b}. {a} - {b} = {a - b}. #### {a * b}")
    return lines


def build_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = 512):
    """A byte-level BPE (digits one per token) with Llama-3-style special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus or default_corpus()), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|pad|>",
        padding_side="left",
        chat_template=LLAMA3_TEMPLATE,
        model_max_length=2048,
    )


def build_tiny_model(
    out_dir: str | os.PathLike,
    *,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 512,
    max_positions: int = 1024,
    corpus: Iterable[str] | None = None,
    seed: int = 0,
) -> Path:
    """Build, initialise and save (safetensors) a tiny Llama and its tokenizer; return the folder."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(corpus)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
