# make demo | make test | make bench | make docs, and make wheel | make wheel-test. Each target sets
# itself up on a bare machine: it creates .venv, installs requirements-dev.txt into it and
# builds the extension there.
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
WHEEL_DEPS_STAMP := $(VENV)/.stamp-wheel-deps
BENCH_DEPS_STAMP := $(VENV)/.stamp-bench-deps
# The `tidaldb` command (serve, cert, ...), placed inside the Python package, which
# installs it as the `tidaldb` script and `python -m tidaldb`.
BIN := python/tidaldb/_bin/tidaldb
# The extension's docstrings are the files of rust/tidaldb-py/pydoc/, included at compile time.
RUST_SOURCES := Cargo.toml Cargo.lock pyproject.toml $(shell find rust -type f \( -name '*.rs' -o -name Cargo.toml -o -name '*.md' \) -not -path '*/target/*')

.PHONY: demo cluster-demo test bench docs rust-check ext python-check wheel wheel-test clean

$(DEPS_STAMP): requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

$(WHEEL_DEPS_STAMP): $(DEPS_STAMP) requirements-wheel.txt
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-wheel.txt
	touch $@

# The peers bench/bench_peers.py compares with (DuckDB, pyarrow); only `make bench` needs them.
$(BENCH_DEPS_STAMP): $(DEPS_STAMP) requirements-bench.txt
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-bench.txt
	touch $@

$(BIN): $(RUST_SOURCES)
	$(CARGO) build --release -p tidaldb-server --bin tidaldb
	mkdir -p $(dir $@)
	cp target/release/tidaldb $@

$(EXT_STAMP): $(DEPS_STAMP) $(RUST_SOURCES) $(BIN)
	# A version-tagged build left by an older (non-abi3) checkout would shadow the abi3 one.
	rm -f python/tidaldb/_native.cpython-*.so
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop --release -m rust/tidaldb-py/Cargo.toml
	touch $@

ext: $(EXT_STAMP)

# `make wheel`: the one wheel to publish, in dist/. It is abi3 (CPython >= 3.10) and
# manylinux_2_28: zig (the ziglang and cargo-zigbuild packages of requirements-wheel.txt)
# links the extension and the server binary against glibc 2.28, where linking with this
# machine's glibc would demand that version (2.36 here). Both ELF files are stripped, and
# auditwheel checks both. The binary that the dev install uses is put back afterwards.
WHEEL_TARGET := x86_64-unknown-linux-gnu
WHEEL_GLIBC := 2.28
WHEEL_MANYLINUX := manylinux_$(subst .,_,$(WHEEL_GLIBC))
WHEEL_PLAT := $(WHEEL_MANYLINUX)_x86_64
WHEEL_BUILD := target/wheel-build
# The server gets its own target directory: cargo-zigbuild and maturin's zig set different
# environments, and sharing one directory would rebuild every crate on each switch.
WHEEL_SERVER_TARGET := target/wheel-server
WHEEL_DIR := dist
VENV_PATH := PATH=$(abspath $(VENV))/bin:$$PATH

wheel: $(WHEEL_DEPS_STAMP)
	$(VENV_PATH) CARGO_TARGET_DIR=$(WHEEL_SERVER_TARGET) $(CARGO) zigbuild --release \
		-p tidaldb-server --bin tidaldb --target $(WHEEL_TARGET).$(WHEEL_GLIBC)
	rm -rf $(WHEEL_BUILD) $(WHEEL_DIR)
	mkdir -p $(dir $(BIN))
	if [ -e $(BIN) ]; then mv $(BIN) $(BIN).dev; fi; \
	trap 'rm -f $(BIN); if [ -e $(BIN).dev ]; then mv $(BIN).dev $(BIN); fi' EXIT; \
	strip -o $(BIN) $(WHEEL_SERVER_TARGET)/$(WHEEL_TARGET)/release/tidaldb; \
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV_PATH) $(VENV)/bin/maturin build --release --strip \
		--zig --target $(WHEEL_TARGET) --compatibility $(WHEEL_MANYLINUX) --out $(WHEEL_BUILD)
	$(VENV)/bin/auditwheel show $(WHEEL_BUILD)/*.whl
	$(VENV_PATH) $(VENV)/bin/auditwheel repair --plat $(WHEEL_PLAT) --wheel-dir $(WHEEL_DIR) $(WHEEL_BUILD)/*.whl
	ls -l $(WHEEL_DIR)

# Installs dist/'s wheel into fresh venvs of the Pythons named below that this machine
# has, and runs tests/wheel_smoke.py in each. Not part of `make test`; see tests/wheel_smoke.py.
wheel-test: wheel
	$(PY) tests/wheel_smoke.py $(WHEEL_DIR)/*.whl

demo: $(EXT_STAMP)
	$(PY) -m tidaldb.demo

# `make docs`: the API reference of the installed package, as HTML in docs/api/ (open
# docs/api/index.html). pdoc reads the runtime docstrings (Google style) and the stub's types.
DOCS_DIR := docs/api

docs: $(EXT_STAMP)
	rm -rf $(DOCS_DIR)
	$(PY) -m pdoc --docformat google --output-directory $(DOCS_DIR) \
		tidaldb tidaldb.exceptions tidaldb.plotting tidaldb.testing tidaldb.servers

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

bench: $(EXT_STAMP) $(BENCH_DEPS_STAMP)
	$(CARGO) bench -p tidaldb --bench core --bench replication --bench tenancy --bench state_bytes --bench exp2
	$(PY) bench/bench_python.py
	$(PY) bench/bench_bulk.py
	$(PY) bench/bench_peers.py
	$(PY) bench/bench_cluster.py
	$(PY) bench/bench_network.py
	$(CARGO) test --release -p tidaldb-server --test failover_timing -- --ignored --nocapture
	$(CARGO) test --release -p tidaldb-server --test control_commit_latency -- --ignored --nocapture
	$(CARGO) test --release -p tidaldb-server --test migration_timing -- --ignored --nocapture

clean:
	rm -f $(DEPS_STAMP) $(EXT_STAMP) $(WHEEL_DEPS_STAMP) $(BENCH_DEPS_STAMP)
