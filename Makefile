# omnitok: `make quickstart` runs the main job; `make test` runs the tests.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.omnitok-installed

.PHONY: venv test lint quickstart bench gpu-check clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip >/dev/null

$(STAMP): $(PY) pyproject.toml scripts/install_sysdeps.sh
	bash scripts/install_sysdeps.sh
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install "torch==2.13.0"
	$(PIP) install -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks

test: venv
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q tests

quickstart: venv
	$(PY) -m omnitok.cli quickstart

# Benchmarks run the peers beside ours; encodec is installed without its torchaudio dependency
# (benchmarks/audio_codec.py stubs it: only encodec's file I/O uses torchaudio).
bench: venv
	$(PIP) install -e ".[bench]"
	$(PIP) install --no-deps "encodec>=0.1.1"
	$(PY) benchmarks/quantizers.py
	$(PY) benchmarks/audio_codec.py
	$(PY) benchmarks/train_lm.py
	$(PY) benchmarks/generate.py

# On a CUDA machine with PyTorch and no registry (wheels from `scripts/gpu_check.sh --prepare`, made where one is
# reachable): the GPU tests and benchmarks within 8 minutes, results named on the last line. No venv needed.
gpu-check:
	bash scripts/gpu_check.sh

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
