"""Quantized bases, as far as training and merging need them: what the forward pass of a QLoRA run saw.

An adapter trained on a 4-bit base learned corrections relative to the *dequantized* weights. Merging it into
the full-precision weights adds those corrections to weights the adapter never saw (lesson 1 in DESIGN.md).
This module reproduces the quantize -> dequantize round trip so that training, merging (`--dequantized-base`)
and verification all use the same weights.

`nf4` is real QLoRA: the base is loaded through bitsandbytes as 4-bit NF4 (blocks of 64, no double
quantization, so the dequantized weights are reproducible from the full-precision file), and merging rebuilds
exactly those weights with bitsandbytes' own quantize/dequantize. `fake-nf4` is the same round trip in plain
torch (each group scaled by its absolute maximum, rounded to the nearest of the 16 NF4 levels of QLoRA's code
book); it needs no bitsandbytes, so the corruption scenario is testable anywhere.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hone.errors import HoneError

# The 16 NF4 levels (Dettmers et al., QLoRA, appendix E), as bitsandbytes defines them.
NF4_LEVELS = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
)


class Quantization(BaseModel):
    """How a base was quantized while an adapter trained on it; stored in the adapter's lineage."""

    model_config = ConfigDict(extra="forbid")

    method: str = "fake-nf4"
    group_size: int = Field(64, ge=2)
    levels: int = 16
    dtype: str = Field("float32", description="nf4: the dtype the weights were quantized from (the training dtype)")
    modules: list[str] = Field(default_factory=list, description="checkpoint names of the quantized weights")

    def describe(self) -> str:
        return f"4-bit {self.method} (group {self.group_size}, {self.levels} levels, {len(self.modules)} weights)"


def roundtrip(weight: Any, group_size: int, method: str = "fake-nf4", dtype: str = "float32") -> Any:
    """The weights a 4-bit NF4 forward pass computes with: quantize per group, dequantize, in float32."""
    import torch

    if method == "nf4":
        return _bnb_roundtrip(weight, group_size, dtype)
    w = weight.detach().to(torch.float32).reshape(-1)
    pad = (-w.numel()) % group_size
    if pad:
        w = torch.cat([w, w.new_zeros(pad)])
    groups = w.view(-1, group_size)
    absmax = groups.abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
    levels = torch.tensor(NF4_LEVELS, dtype=torch.float32, device=w.device)
    # Nearest level via the midpoints between sorted levels: no (n x 16) distance matrix.
    midpoints = (levels[1:] + levels[:-1]) / 2
    index = torch.bucketize(groups / absmax, midpoints)
    out = (levels[index] * absmax).reshape(-1)
    if pad:
        out = out[: weight.numel()]
    return out.view(weight.shape)


def _bitsandbytes() -> Any:
    try:
        import bitsandbytes
    except ImportError:
        raise HoneError("quantize_base nf4 needs bitsandbytes (pip install 'hone[qlora]')") from None
    return bitsandbytes


def _bnb_roundtrip(weight: Any, group_size: int, dtype: str) -> Any:
    """bitsandbytes' own NF4 quantize -> dequantize, from the dtype training loaded the weights in."""
    import torch

    from hone.models.loading import torch_dtype

    functional = _bitsandbytes().functional
    w = weight.detach().to(torch_dtype(dtype)).contiguous()
    packed, state = functional.quantize_4bit(w, blocksize=group_size, quant_type="nf4", compress_statistics=False)
    return functional.dequantize_4bit(packed, state).to(torch.float32).view(weight.shape)


def load_nf4_base(base: Any, dtype: str, device_map: Any, trust_remote_code: bool) -> tuple[Any, Quantization]:
    """The base as a bitsandbytes 4-bit NF4 model (QLoRA), and the spec its adapters' lineage records."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from hone.models.loading import torch_dtype

    bnb = _bitsandbytes()
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=False,
                                bnb_4bit_compute_dtype=torch_dtype(dtype), bnb_4bit_quant_storage=torch.uint8)
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype(dtype), quantization_config=config,
                                                     device_map=device_map, use_safetensors=True,
                                                     trust_remote_code=trust_remote_code)
    except (OSError, ValueError, RuntimeError) as e:
        raise HoneError(f"{base}: cannot load the model in 4-bit ({str(e).splitlines()[0]})") from None
    modules = [f"{name}.weight" for name, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    return model, Quantization(method="nf4", group_size=64, modules=modules, dtype=dtype)


def quantizable_weights(model: Any) -> list[str]:
    """Weight names of every linear layer except the output head, as bitsandbytes quantizes a model."""
    import torch

    output = model.get_output_embeddings()
    return [f"{name}.weight" for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and module is not output]


def quantize_model_in_place(model: Any, method: str, group_size: int) -> Quantization:
    """Replace every quantizable weight by its round trip; return the spec the lineage records."""
    if method != "fake-nf4":
        raise HoneError(f"quantize_base: unknown method {method!r} (supported: fake-nf4)")
    spec = Quantization(method=method, group_size=group_size, modules=quantizable_weights(model))
    apply_quantization(model, spec)
    return spec


def apply_quantization(model: Any, spec: Quantization) -> None:
    """Put the round-tripped weights `spec` lists into `model`: the base exactly as a QLoRA run saw it."""
    import torch

    params = dict(model.named_parameters())
    missing = [n for n in spec.modules if n not in params]
    if missing:
        raise HoneError(f"the model has no weight {missing[0]} that the lineage lists as quantized")
    with torch.no_grad():
        for name in spec.modules:
            p = params[name]
            p.copy_(roundtrip(p, spec.group_size, spec.method, spec.dtype).to(p.dtype))


def dequantized(name: str, tensor: Any, spec: Quantization | None) -> Any:
    """`tensor` as the adapter saw it: round-tripped if the lineage lists it as quantized, else unchanged."""
    if spec is None or name not in spec.modules:
        return tensor
    return roundtrip(tensor, spec.group_size, spec.method, spec.dtype)


def check_spec(spec: dict[str, Any] | None, where: str) -> Quantization | None:
    if spec is None:
        return None
    try:
        q = Quantization.model_validate(spec)
    except ValueError as e:
        raise HoneError(f"{where}: unreadable `quantization` in lineage ({str(e).splitlines()[0]})") from None
    if q.method not in ("nf4", "fake-nf4"):
        raise HoneError(f"{where}: the base was quantized with {q.method!r}, which Hone cannot reproduce; "
                        "merge into its dequantized weights with the tool that trained it")
    return q
