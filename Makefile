# s3dlio: `make demo` runs the main job end to end; `make test` runs every test.
# Both set up what they need on a fresh machine (a venv in .venv, npm packages in node_modules).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint dist bench setup clean dlio dlio-venv test-ray ray-venv

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

# DLIO (dlio-benchmark 2.0.0 from PyPI) in a venv of its own, for s3dlio.integrations.dlio.
# DLIO is installed without its declared requirements (they include NVIDIA DALI for CUDA,
# torchaudio and torchvision, which it does not import for these workloads); what it imports
# is installed explicitly: TensorFlow (imported at start-up by 2.0.0), pydftracer, mpi4py with
# mpich from PyPI as its MPI library, and torch pinned as in .venv. s3dlio goes in editable.
DLIO_VENV  := .venv-dlio
DLIO_STAMP := $(DLIO_VENV)/.installed

$(DLIO_STAMP): pyproject.toml
	test -x $(DLIO_VENV)/bin/python || $(PYTHON) -m venv $(DLIO_VENV)
	$(DLIO_VENV)/bin/python -m pip install -q --upgrade pip
	$(DLIO_VENV)/bin/python -m pip install -q --no-deps 'dlio-benchmark==2.0.0'
	$(DLIO_VENV)/bin/python -m pip install -q 'torch==2.13.0' 'tensorflow-cpu==2.21.0' \
		'pydftracer==1.0.2' 'mpi4py>=3.1.4' mpich 'hydra-core>=1.3.2' 'omegaconf>=2.2.0' \
		'h5py>=3.11.0' 'pandas>=1.5.1' 'psutil>=5.9.8' 'Pillow>=9.3.0' 'PyYAML>=6.0.0'
	$(DLIO_VENV)/bin/python -m pip install -q -e '.[s3,azure,gcs,hdf5]'
	touch $@

dlio-venv: $(DLIO_STAMP)

# A small unet3d-like workload (generate, then train 2 epochs) on s3:// (moto), file:// and
# DLIO's own local storage, printing DLIO's AU %, samples/s and MB/s.
dlio: $(STAMP) $(DLIO_STAMP)
	$(PY) -m tests.integrations.dlio_workload

# Ray Data (s3dlio.ray, `s3-cli cp/put --ray`) in a venv of its own: ray[data] is large (about
# 4 minutes to install on 2 cores, 2.3 GB with the test extra), so it is not in .venv and not a
# prerequisite of `make test`. `make test-ray` runs tests/ray there, on a two-node Ray cluster
# that the tests' fixture starts on 127.0.0.2/127.0.0.3 (about 2 minutes); .ci/run runs it.
RAY_VENV  := .venv-ray
RAY_STAMP := $(RAY_VENV)/.installed

$(RAY_STAMP): pyproject.toml
	test -x $(RAY_VENV)/bin/python || $(PYTHON) -m venv $(RAY_VENV)
	$(RAY_VENV)/bin/python -m pip install -q --upgrade pip
	$(RAY_VENV)/bin/python -m pip install -q -e '.[ray,s3,parquet,test]'
	touch $@

ray-venv: $(RAY_STAMP)

test-ray: $(RAY_STAMP) $(NODE_STAMP)
	$(RAY_VENV)/bin/python -m pytest tests/ray

demo: $(STAMP) $(NODE_STAMP)
	$(PY) examples/demo.py

test: $(STAMP) $(NODE_STAMP) $(ORIGINAL_STAMP) $(DLIO_STAMP)
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
	rm -rf $(VENV) .venv-original $(DLIO_VENV) $(RAY_VENV) node_modules build dist *.egg-info .pytest_cache
