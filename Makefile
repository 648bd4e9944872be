# One-command workflows. `make test` sets up .venv on first use, then lints and tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint format bench demo serve clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv"; \
	  exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# The whole pipeline offline on a synthetic corpus (about 10 minutes on 2 cores), into demo/;
# then $(BIN)/s2f-infer voice.wav draws with the model it trained. A rerun skips finished stages.
demo: $(STAMP)
	$(BIN)/python -m speech2face demo output_dir=demo

# The web page on http://127.0.0.1:7860/ (s2f-serve; Ctrl-C stops it), drawing with the model
# 'make demo' installs; the 'web' extra is installed into .venv first when it is missing.
# Options: make serve SERVE_ARGS="--port 8000 --checkpoint RUN_VOICE/checkpoints/last.pt"
serve: $(STAMP)
	@$(BIN)/python -c "import fastapi, uvicorn, python_multipart" 2>/dev/null || \
	  $(BIN)/python -m pip install --quiet -e ".[web]"
	$(BIN)/s2f-serve $(SERVE_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache outputs multirun demo
