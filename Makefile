# Two commands from a fresh clone: `make demo` and `make test`.
# Both create .venv and install fieldtune with the CPU torch wheel first, so
# pip never pulls a multi-GB CUDA build. Users with a GPU install their own torch.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
STAMP := $(VENV)/.fieldtune-installed
PYTEST_ARGS ?=

.PHONY: install install-llm demo test test-slow test-all test-browser lint benchmarks bench-http clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_PIN)"
	$(PY) -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

# The local LLM server of the LLM plug-in tests (llama-cpp-python compiles from source: ~11 min on 2 cores,
# once; pip keeps the built wheel). Not part of `install`: the demo and the default suite do not need it.
install-llm: $(STAMP)
	$(PY) -m pip install --quiet -e ".[llm-server]"

demo: $(STAMP)
	$(VENV)/bin/fieldtune demo --out out/demo

# The default suite leaves out tests marked slow (real training, export, whole builds): a few minutes on 2 cores.
test: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

# pytest exits 5 when no test is selected (e.g. -k narrows the slow set to nothing): not a failure here.
test-slow: $(STAMP)
	$(PY) -m pytest -m slow $(PYTEST_ARGS) || test $$? -eq 5

test-all: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-browser: $(STAMP)
	.ci/install-browser
	$(PY) -m pytest -m browser $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check fieldtune tests benchmarks

benchmarks: $(STAMP)
	$(PY) benchmarks/baselines.py

bench-http: $(STAMP)
	$(PY) benchmarks/load_http.py --corpus ../shared/data/scifact --queries ../shared/data/scifact/queries.jsonl

clean:
	rm -rf $(VENV) out .pytest_cache
