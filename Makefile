# s3dlio: `make demo` runs the main job end to end; `make test` runs every test.
# Both set up what they need on a fresh machine (a venv in .venv, npm packages in node_modules).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint dist bench setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

NODE_STAMP := node_modules/.installed

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund || npm install --no-audit --no-fund --omit-lockfile-registry-resolved
	touch $@

# The original s3dlio wheel, in a venv of its own (same module name), for the interop tests.
ORIGINAL_STAMP := .venv-original/.installed

$(ORIGINAL_STAMP):
	test -x .venv-original/bin/python || $(PYTHON) -m venv .venv-original
	.venv-original/bin/python -m pip install -q 's3dlio==0.10.0' numpy
	touch $@

demo: $(STAMP) $(NODE_STAMP)
	$(PY) examples/demo.py

test: $(STAMP) $(NODE_STAMP) $(ORIGINAL_STAMP)
	$(PY) -m pytest

# Benchmarks (not tests): peers venv + nginx/wrk via benchmarks/setup.sh; BENCH_ARGS="--quick" or suite names.
bench: $(STAMP)
	bash benchmarks/setup.sh
	$(PY) -m benchmarks $(BENCH_ARGS)

LINT_PATHS := s3dlio tests examples benchmarks scripts

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy s3dlio

# Release check: sdist + wheel (no deprecation warning), twine check, the wheel installed into
# fresh venvs (no extras, then [all]) and smoke-tested by scripts/smoke_dist.py. Output in dist/.
dist: $(STAMP)
	PY=$(PY) PYTHON=$(PYTHON) bash scripts/dist.sh

clean:
	rm -rf $(VENV) .venv-original node_modules build dist *.egg-info .pytest_cache
