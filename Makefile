# make demo | make test | make bench. Each target sets itself up on a bare machine:
# it creates .venv, installs requirements-dev.txt into it and builds the extension there.
# Stamp files under .venv keep repeated runs from reinstalling or rebuilding needlessly.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test
.DELETE_ON_ERROR:

VENV := .venv
PY := $(VENV)/bin/python
CARGO ?= cargo
# Notebooks and tests plot without a display.
export MPLBACKEND := Agg

DEPS_STAMP := $(VENV)/.stamp-deps
EXT_STAMP := $(VENV)/.stamp-ext
# The `tidaldb` command (serve, cert, ...), placed inside the Python package, which
# installs it as the `tidaldb` script and `python -m tidaldb`.
BIN := python/tidaldb/_bin/tidaldb
RUST_SOURCES := Cargo.toml Cargo.lock pyproject.toml $(shell find rust -type f \( -name '*.rs' -o -name Cargo.toml \) -not -path '*/target/*')

.PHONY: demo cluster-demo test bench rust-check ext python-check clean

$(DEPS_STAMP): requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

$(BIN): $(RUST_SOURCES)
	$(CARGO) build --release -p tidaldb-server --bin tidaldb
	mkdir -p $(dir $@)
	cp target/release/tidaldb $@

$(EXT_STAMP): $(DEPS_STAMP) $(RUST_SOURCES) $(BIN)
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop --release -m rust/tidaldb-py/Cargo.toml
	touch $@

ext: $(EXT_STAMP)

demo: $(EXT_STAMP)
	$(PY) -m tidaldb.demo

cluster-demo: $(EXT_STAMP)
	$(PY) examples/cluster/demo.py

rust-check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace

python-check: $(EXT_STAMP)
	$(PY) -m pytest tests
	$(PY) -m mypy.stubtest tidaldb._native
	$(PY) -m mypy --strict python/tidaldb examples
	$(PY) examples/typed_cluster.py
	$(PY) examples/cluster/demo.py > /dev/null
	$(PY) -m pytest --nbmake notebooks

test: rust-check
	$(MAKE) --no-print-directory python-check

bench: $(EXT_STAMP)
	$(CARGO) bench -p tidaldb --bench core --bench replication --bench tenancy
	$(PY) bench/bench_python.py
	$(PY) bench/bench_bulk.py
	$(PY) bench/bench_cluster.py
	$(PY) bench/bench_network.py

clean:
	rm -f $(DEPS_STAMP) $(EXT_STAMP)
