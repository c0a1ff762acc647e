# Like-Opt: `make up` starts everything, `make test` runs every test. Both work on a fresh machine.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-stamp

.PHONY: install up test unit bench protos lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch first (it lies on this machine's disk); otherwise
	# sentence-transformers pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	# Every service's extra and the launcher's, eval's and bench's packages (all), and the codegen and test tools (dev).
	$(PY) -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

up: install
	$(VENV)/bin/likeopt up --ingest docs --backend extractive

test: install
	$(PY) -m pytest

unit: install
	$(PY) -m pytest tests/unit

# Load tests through Envoy of a mesh that is already running (`make up`, or `likeopt up` with the
# same LIKEOPT_* ports); each scenario's JSON and HTML report land in var/bench/.
BENCH_DATA ?= data/scifact
bench: install
	$(VENV)/bin/likeopt bench --scenario search-cached --duration 20 --concurrency 16 --data $(BENCH_DATA) --out var/bench --floor
	$(VENV)/bin/likeopt bench --scenario search-uncached --duration 20 --concurrency 8 --data $(BENCH_DATA) --out var/bench --floor
	$(VENV)/bin/likeopt bench --scenario chat --duration 20 --concurrency 4 --data $(BENCH_DATA) --out var/bench --floor
	$(VENV)/bin/likeopt bench --scenario mixed --requests 10000 --duration 300 --concurrency 8 --data $(BENCH_DATA) --out var/bench --floor

protos: install
	$(PY) -m likeopt.ops.protos

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf var build *.egg-info
