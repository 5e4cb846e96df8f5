"""What a merge and its verification report, typed: `merge_report.json` is `MergeReport` written out.

Its own module so that the merge (which writes the report) and the verification (which measures it) both
import it, and neither imports the other's internals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from hone.errors import HoneError

REPORT_FILE = "merge_report.json"


class _Figures(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")  # a NaN merge says NaN


class Check(_Figures):
    """One measured figure against its limit."""

    value: float
    limit: float
    passed: bool


class LogitChecks(_Figures):
    """Merged model vs the adapter on its reference base, on the probe prompts."""

    max_abs_logit_diff: Check
    mean_kl: Check
    top1_agreement: Check
    greedy_identical: Check


class Verification(_Figures):
    """The figures `verify_merge` measured; `status` "clean" only when every check passed."""

    status: Literal["clean", "failed"]
    failures: list[str]
    warnings: list[str]
    reference: str
    dtype: str
    compute_dtype: str
    weights: dict[str, Any]  # names, shapes, dtypes and LoRA coverage (hone.merge.verify._weights_checks)
    logits: LogitChecks
    probes: int
    positions: int
    adapter_sha256: str
    seconds: float

    @property
    def clean(self) -> bool:
        return self.status == "clean"

    def summary(self) -> str:
        c = self.logits
        return (f"max |dlogit| {c.max_abs_logit_diff.value:.2g}, mean KL {c.mean_kl.value:.2g}, "
                f"top-1 {c.top1_agreement.value:.3f}, greedy identical {c.greedy_identical.value:.0%} "
                f"on {self.probes} probes; reference: {self.reference}")


class MergeFigures(_Figures):
    lora_modules: int
    replaced_modules: int
    tensors_written: int
    shards: int
    files_copied: list[str]
    into: str
    forced: bool
    seconds: float


class MergeReport(_Figures):
    """`merge_report.json`: what was merged into what, and the proof (None when merged without verification)."""

    base: str
    adapter: str
    output: str
    merge: MergeFigures
    warnings: list[str]
    versions: dict[str, str]
    verification: Verification | None = None
    status: str  # "verified", "unverified", or "failed: ..." (then only the report is left in the folder)

    def write(self, path: Path) -> None:
        from hone.atomic import write_text_atomic

        write_text_atomic(path, json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls, path: Path) -> "MergeReport":
        try:
            return cls.model_validate_json(path.read_text())
        except (OSError, ValueError) as e:
            raise HoneError(f"{path}: not a readable merge report ({str(e).splitlines()[0]})") from None
