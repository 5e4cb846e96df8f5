"""Quantized bases, as far as training and merging need them: what the forward pass of a QLoRA run saw.

An adapter trained on a 4-bit base learned corrections relative to the *dequantized* weights. Merging it into
the full-precision weights adds those corrections to weights the adapter never saw (lesson 1 in DESIGN.md).
This module reproduces the quantize -> dequantize round trip so that training, merging (`--dequantized-base`)
and verification all use the same weights.

`fake-nf4` is a pure-torch NF4: each group of `group_size` consecutive weights is scaled by its absolute
maximum and rounded to the nearest of the 16 NF4 levels (QLoRA's code book), exactly what bitsandbytes NF4
computes without double quantization. It runs everywhere, so the corruption scenario is testable on CPU.
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
    modules: list[str] = Field(default_factory=list, description="checkpoint names of the quantized weights")

    def describe(self) -> str:
        return f"4-bit {self.method} (group {self.group_size}, {self.levels} levels, {len(self.modules)} weights)"


def roundtrip(weight: Any, group_size: int) -> Any:
    """The weights a 4-bit NF4 forward pass computes with: quantize per group, dequantize, in float32."""
    import torch

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
            p.copy_(roundtrip(p, spec.group_size).to(p.dtype))


def dequantized(name: str, tensor: Any, spec: Quantization | None) -> Any:
    """`tensor` as the adapter saw it: round-tripped if the lineage lists it as quantized, else unchanged."""
    if spec is None or name not in spec.modules:
        return tensor
    return roundtrip(tensor, spec.group_size)


def check_spec(spec: dict[str, Any] | None, where: str) -> Quantization | None:
    if spec is None:
        return None
    try:
        q = Quantization.model_validate(spec)
    except ValueError as e:
        raise HoneError(f"{where}: unreadable `quantization` in lineage ({str(e).splitlines()[0]})") from None
    if q.method != "fake-nf4":
        raise HoneError(f"{where}: the base was quantized with {q.method!r}, which Hone cannot reproduce; "
                        "merge into its dequantized weights with the tool that trained it")
    return q
