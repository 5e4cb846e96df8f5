"""`hone models import`: a GGUF file to a full-precision Hugging Face folder that Hone can train and merge.

Users often have a model only as GGUF (llama.cpp's format), usually quantized. transformers reads it (with the
`gguf` package) and dequantizes every tensor, but refuses to `save_pretrained` the result (its config carries the
GGUF quantization), so the weights are moved into a plain model built from the same config and saved as
safetensors with the tokenizer, its chat template and a generation config that stops at the end-of-turn token.

The folder's `lineage.json` says it was dequantized from a quantized file (format, quantization types, sha256
of the file): its weights are *a* full-precision model, not the one the GGUF was quantized from, and an
adapter trained on it merges into exactly these weights (`weights_sha256`). The folder is built hidden and
renamed into place last, so a failed import leaves nothing that looks like a model.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from hone.errors import HoneError

GGUF_MAGIC = b"GGUF"
_PROBE = [{"role": "user", "content": "HONE_Q"}, {"role": "assistant", "content": "HONE_A"}]


def _say(message: str) -> None:
    from hone.progress import console

    console.print(message, highlight=False, soft_wrap=True)


def read_gguf_header(path: Path) -> dict[str, Any]:
    """Architecture, quantization and chat template of a GGUF file, read without loading any tensor."""
    if not path.is_file():
        raise HoneError(f"{path}: no such file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise HoneError(f"{path}: not a GGUF file (starts with {magic!r}, expected {GGUF_MAGIC!r})")
    try:
        from gguf import GGUFReader
        from gguf.constants import LlamaFileType
    except ImportError:
        raise HoneError("reading GGUF needs the `gguf` package (pip install gguf)") from None
    try:
        reader = GGUFReader(path)
    except (ValueError, OSError, IndexError, KeyError) as e:
        raise HoneError(f"{path}: unreadable GGUF ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None

    def field(key: str) -> Any:
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    file_type = field("general.file_type")
    try:
        file_type_name = LlamaFileType(file_type).name.removeprefix("MOSTLY_") if file_type is not None else None
    except ValueError:
        file_type_name = f"unknown ({file_type})"
    tensor_types = Counter(t.tensor_type.name for t in reader.tensors)
    return {
        "architecture": field("general.architecture"),
        "name": field("general.name"),
        "file_type": file_type_name,
        "tensor_types": dict(sorted(tensor_types.items())),
        "tensors": len(reader.tensors),
        "chat_template": field("tokenizer.chat_template"),
        "context_length": field(f"{field('general.architecture')}.context_length"),
    }


def _check_architecture(path: Path, arch: str | None) -> None:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    if not arch:
        raise HoneError(f"{path}: the GGUF metadata has no general.architecture")
    known = {a.replace("_", "") for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer")}
    if arch.replace("_", "").replace("-", "") not in known:
        raise HoneError(f"{path}: architecture {arch!r} cannot be read by transformers from GGUF "
                        f"(it reads: {', '.join(sorted(known))})")


def end_of_turn_token(tokenizer: Any) -> str | None:
    """The special token the chat template puts right after an assistant answer, if any."""
    from hone.chat import END_OF_TURN_TOKENS

    text = tokenizer.apply_chat_template(_PROBE, tokenize=False)
    after = text.split("HONE_A", 1)[1].lstrip() if "HONE_A" in text else ""
    vocab = tokenizer.get_vocab()
    return next((t for t in END_OF_TURN_TOKENS if after.startswith(t) and t in vocab), None)


def _load_tokenizer(src: Path, template: str | None):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise HoneError(f"{src}: cannot read the tokenizer ({str(e).splitlines()[0]})") from None
    if template is not None:
        tok.chat_template = template
    try:
        eot = end_of_turn_token(tok)
    except Exception as e:  # jinja2 raises its own error types; a template that cannot render is the input's fault
        raise HoneError(f"{src}: the chat template does not render ({type(e).__name__}: {str(e).splitlines()[0]})"
                        ) from None
    if tok.eos_token_id is None:
        raise HoneError(f"{src}: the tokenizer has no EOS token")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok, eot


def _load_plain_model(src: Path, dtype: str):
    """The dequantized weights in a plain model class: a GGUF-loaded model cannot be saved as it is."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from hone.models.loading import torch_dtype

    try:
        config = AutoConfig.from_pretrained(src.parent, gguf_file=src.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch_dtype(dtype))
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise HoneError(f"{src}: transformers cannot load it as a causal LM ({str(e).splitlines()[0]})") from None
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = dtype
    state = gguf_model.state_dict()
    buffers = dict(gguf_model.named_buffers())  # non-persistent ones (rotary inv_freq) are not in the state dict
    del gguf_model
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype(dtype))
    result = model.load_state_dict(state, strict=False, assign=True)
    tied = set(getattr(model, "_tied_weights_keys", None) or {}) if config.tie_word_embeddings else set()
    missing = [k for k in result.missing_keys if k not in tied]
    if missing or result.unexpected_keys:
        raise HoneError(f"{src}: the GGUF tensors do not fill a {type(model).__name__} "
                        f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})")
    model.tie_weights()
    meta = [n for n, p in model.named_parameters() if p.is_meta]
    if meta:
        raise HoneError(f"{src}: weights missing after import: {', '.join(meta[:3])}")
    for name, buf in list(model.named_buffers()):
        if buf.is_meta:
            if name not in buffers:
                raise HoneError(f"{src}: buffer {name} was not rebuilt; this architecture is not supported")
            owner, _, leaf = name.rpartition(".")
            model.get_submodule(owner)._buffers[leaf] = buffers[name]
    model.eval()
    return model


def import_gguf(src: str | os.PathLike, out: str | os.PathLike, *, chat_template: str | os.PathLike | None = None,
                dtype: str = "float32") -> dict[str, Any]:
    """Write OUT as a Hugging Face folder dequantized from the GGUF file SRC; return its lineage."""
    from hone.hashing import file_sha256
    from hone.models.loading import torch_dtype, weights_sha256
    from hone.runs import package_versions
    from hone.models.lineage import write_lineage

    src, out = Path(src), Path(out)
    torch_dtype(dtype)  # an unknown dtype fails before anything is read
    header = read_gguf_header(src)
    _check_architecture(src, header["architecture"])
    template = None
    if chat_template is not None:
        tpath = Path(chat_template)
        if not tpath.is_file():
            raise HoneError(f"{tpath}: no such chat template file")
        template = tpath.read_text(encoding="utf-8")
        if not template.strip():
            raise HoneError(f"{tpath}: the chat template file is empty")
    elif not header["chat_template"]:
        raise HoneError(f"{src}: the GGUF file has no chat template (tokenizer.chat_template); pass one with "
                        "--chat-template FILE (a Jinja template)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise HoneError(f"{out}: already exists and is not empty; choose a new output folder")

    _say(f"hashing {src.name} ...")
    source_sha = file_sha256(src)
    tokenizer, eot = _load_tokenizer(src, template)
    _say(f"dequantizing {header['tensors']} tensors ({header['file_type']}) to {dtype} ...")
    model = _load_plain_model(src, dtype)
    tokenizer.model_max_length = model.config.max_position_embeddings

    work = out.parent / f".{out.name}.importing"
    if work.exists():
        shutil.rmtree(work)  # a killed earlier attempt
    work.mkdir(parents=True)
    try:
        eos_ids = [tokenizer.eos_token_id]
        if eot is not None and tokenizer.convert_tokens_to_ids(eot) != tokenizer.eos_token_id:
            eos_ids.insert(0, tokenizer.convert_tokens_to_ids(eot))
        gen = model.generation_config
        gen.eos_token_id = eos_ids[0] if len(eos_ids) == 1 else eos_ids
        gen.pad_token_id = tokenizer.pad_token_id
        gen.bos_token_id = tokenizer.bos_token_id
        _say(f"writing safetensors to {out} ...")
        model.save_pretrained(work, safe_serialization=True)
        tokenizer.save_pretrained(work)
        n_params = sum(p.numel() for p in model.parameters())
        lineage = {
            "kind": "imported",
            "base": {
                "format": "gguf", "path": str(src.resolve()), "sha256": source_sha,
                "quantization": {"file_type": header["file_type"], "tensor_types": header["tensor_types"]},
                "architecture": header["architecture"], "name": header["name"],
            },
            "dequantized": {"dtype": dtype, "parameters": n_params, "weights_sha256": weights_sha256(work),
                            "note": "weights are the GGUF's quantized values dequantized, not the original "
                                    "full-precision model; adapters trained here merge into these weights"},
            "tokenizer": {"eos_token": tokenizer.eos_token, "end_of_turn": eot, "pad_token": tokenizer.pad_token,
                          "chat_template": "given" if template is not None else "from the GGUF file"},
            "versions": package_versions(),
        }
        write_lineage(work, lineage)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(work, out)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return lineage
