# Developer entry points. PYTHON defaults to the dev venv (.venv) when there is
# one; CI passes PYTHON=python. Build dependencies come from PyPI.
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
# Console scripts (ruff, pycodestyle for cython-lint, actionlint) live beside PYTHON.
SCRIPTS := $(shell $(PYTHON) -c 'import os, sys; print(os.path.dirname(sys.executable))')
export PATH := $(SCRIPTS):$(PATH)
# Release artifacts use the one Cython pinned here (see [tool.cibuildwheel]).
CONSTRAINTS := $(CURDIR)/ci/constraints-build.txt

PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: help compile debug test testinstalled winetest bench wheel lint format clean

help:
	@echo "make compile        build the engine in place (release)"
	@echo "make debug          rebuild it in place with RIO_DEBUG=1 (assertions, leak counters)"
	@echo "make test           run the suite against the in-place build (PYTEST_ARGS=...)"
	@echo "make testinstalled  sdist -> wheel -> auditwheel -> fresh venv -> suite + example"
	@echo "make winetest       the suite on Windows CPython under wine (mingw-w64 build; PYTEST_ARGS=...)"
	@echo "make bench          the comparison suite (BENCH_ARGS=--quick ...)"
	@echo "make wheel          sdist and a wheel built from it; the wheel lands in wheelhouse/"
	@echo "make lint           ruff, ruff format --check, cython-lint, mypy, stubtest, actionlint"
	@echo "make format         apply ruff's import sorting and formatting"
	@echo "make clean          remove build products"

compile:
	$(PYTHON) setup.py build_ext --inplace

debug:
	RIO_DEBUG=1 $(PYTHON) setup.py build_ext --inplace --force

test:
	$(PYTHON) -m pytest $(PYTEST_ARGS)

testinstalled:
	PYTHON=$(PYTHON) bash ci/test-installed.sh

winetest:
	bash ci/wine-tests.sh $(PYTEST_ARGS)

bench:
	$(PYTHON) benchmarks/run.py $(BENCH_ARGS)

wheel:
	PIP_CONSTRAINT=$(CONSTRAINTS) PIP_BUILD_CONSTRAINT=$(CONSTRAINTS) \
		$(PYTHON) -m build --outdir dist .
	cp dist/rio_rt-*.whl wheelhouse/
	@ls -l wheelhouse/*.whl

# Every check runs; the target fails at the end if any of them failed.
lint:
	@status=0; \
	run() { echo "== $$*"; "$$@" || status=1; }; \
	run ruff check . ; \
	run ruff format --check . ; \
	run cython-lint rio_core ; \
	run $(PYTHON) -m mypy ; \
	run $(PYTHON) -m mypy.stubtest rio_core --allowlist ci/stubtest-allowlist.txt ; \
	run env PYTHON=$(PYTHON) bash ci/check-workflows.sh ; \
	exit $$status

format:
	ruff check --select I --fix .
	ruff format .

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
	rm -f rio_core/*.so rio_core/*.pyd rio_core/*.c rio_core/*.html wheelhouse/*.whl
	find . -name __pycache__ -type d -not -path "./.venv*" -prune -exec rm -rf {} +
