# Groundgate: `make run` starts the gateway on embedded defaults; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
export HF_HUB_OFFLINE := 1

.PHONY: run test install install-dev lint typecheck bench clean eval-gate eval-baseline

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# A plain `pip install` is all the gateway needs (the tokenizer ships in the package); the
# quantize step only derives the cache's int8 MiniLM now rather than on its first use.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	$(BIN)/python -m groundgate.providers.local.quantize >/dev/null
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/groundgate ingest --sample --quiet
	$(BIN)/groundgate serve --host $(HOST) --port $(PORT)

# As in CI, a test that needs Redis or PostgreSQL fails instead of skipping when it cannot
# start one, so a green run has tested everything; GROUNDGATE_REQUIRE_SERVICES=0 lets them skip.
GROUNDGATE_REQUIRE_SERVICES ?= 1

# The suite, then the project's golden-set gate (eval-gate, below): CI runs exactly this.
test: install-dev
	GROUNDGATE_REQUIRE_SERVICES=$(GROUNDGATE_REQUIRE_SERVICES) $(BIN)/python -m pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory eval-gate

lint: install-dev
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/python scripts/vendor_tokenizer.py --check
	$(BIN)/mypy
	$(BIN)/lint-imports  # the layer contracts in pyproject.toml [tool.importlinter]

# The project's own golden set (evals/golden/docs.jsonl) through the bundled docs app on the
# sample knowledge base and the local model (no keys, no services), gated against the committed
# baseline: fails only on a drop beyond --max-drop that is also significant. A fresh store each
# time, no eval cache and nothing stored, so the result depends on the code alone.
EVAL_GATE_DIR ?= .eval-gate
EVAL_GATE_ENV := GROUNDGATE_STORE__PATH=$(EVAL_GATE_DIR)/groundgate.db GROUNDGATE_CONFIG=
EVAL_GATE_RUN := $(BIN)/groundgate eval run evals/golden/docs.jsonl --app docs --no-cache --no-store

eval-gate: install
	rm -rf $(EVAL_GATE_DIR) && mkdir -p $(EVAL_GATE_DIR)
	$(EVAL_GATE_ENV) $(BIN)/groundgate ingest --sample --quiet
	$(EVAL_GATE_ENV) $(EVAL_GATE_RUN) --baseline evals/golden/docs-baseline.json --out $(EVAL_GATE_DIR)/report.json

# Re-record the baseline after an intended change (review the diff before committing it).
eval-baseline: install
	rm -rf $(EVAL_GATE_DIR) && mkdir -p $(EVAL_GATE_DIR)
	$(EVAL_GATE_ENV) $(BIN)/groundgate ingest --sample --quiet
	$(EVAL_GATE_ENV) $(EVAL_GATE_RUN) --out evals/golden/docs-baseline.json

bench: install-dev
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
