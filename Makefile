# sampy: build the book, run the tests, serve the playground, run the benchmarks.
# Each target installs what it needs on a machine that only has python3 (3.11+), apt and npm,
# and reuses it on the next run: .venv/.installed and _vendor/.stamp are only rebuilt when
# the files they depend on change.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PORT ?= 8866
CHROMIUM := /usr/bin/chromium
REQUIREMENTS := $(wildcard requirements*.txt)

# Put the venv first on PATH for every recipe, so that Jupyter finds the venv's kernel and
# tools, whether or not the caller activated it.
export PATH := $(BIN):$(PATH)
# An exported MPLBACKEND (e.g. agg) reaches the notebook kernels, and then plt.show()
# silently outputs nothing: the book builds "fine" with every figure missing.
unexport MPLBACKEND

.PHONY: help venv vendor chromium lab book student teacher test lint playground bench clean clean-all

help:
	@echo "make book        build the Jupyter Book into _build/html (installs what it needs)"
	@echo "make student     the student edition: no solutions, HTML in _build/student/html and"
	@echo "                 one notebook per chapter in _build/student/notebooks (nbgrader cells)"
	@echo "make teacher     the teacher edition: make book, plus the notebooks with solutions in"
	@echo "                 _build/teacher/notebooks (nbgrader source notebooks)"
	@echo "make test        ruff + pytest, including the book build and headless-browser tests"
	@echo "make lab         bundle the browser laboratory into lab/dist (the book's build does it too)"
	@echo "make playground  serve the playground with Voila on 127.0.0.1:$(PORT): open the URL it prints"
	@echo "                 (it carries a token; TRUSTED=1 drops the token on a single-user laptop)"
	@echo "make bench       run benchmarks/run_all.py"
	@echo "make clean       remove build outputs (make clean-all also removes .venv and node_modules)"

venv: $(VENV)/.installed

$(VENV)/.installed: $(REQUIREMENTS) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install $(addprefix -r ,$(REQUIREMENTS))
	$(BIN)/python -m pip install --no-deps -e .
	touch $@

vendor: _vendor/.stamp

_vendor/.stamp: package.json package-lock.json scripts/vendor_js.sh
	bash scripts/vendor_js.sh

# The browser laboratory (lab/): sampy's metadata exported, the JavaScript twin bundled by the
# pinned esbuild into lab/dist/web (the book's pages) and lab/dist/node (node: the tests and
# `node lab/dist/node/sampy-lab-cli.cjs`). The book's Sphinx extension runs the same build.
lab: venv vendor
	$(BIN)/python lab/build_lab.py

# Debian's chromium for the Playwright tests (never `playwright install`: it downloads a
# browser build from outside the package registries).
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi; \
	  $$sudo apt-get update; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	fi

# --all: a fresh Sphinx environment, so every notebook runs against the current sampy (an
# incremental build re-executes only the pages whose own source changed).
book: venv vendor
	$(BIN)/jupyter-book build . -W --keep-going --all
	@echo "$(CURDIR)/_build/html/index.html"

# The student edition (scripts/editions.py says what it removes and why): the book's sources
# without solutions, teacher-only cells and grading notes, built with the book's own
# configuration, so no solution reaches the HTML, its _sources or its search index; and one
# notebook per chapter that plain Jupyter renders, with nbgrader cells for checked exercises.
student: venv vendor
	$(BIN)/python scripts/editions.py student
	$(BIN)/jupyter-book build _build/student/src -W --keep-going --all
	rm -rf _build/student/html
	mv _build/student/src/_build/html _build/student/html
	@echo "$(CURDIR)/_build/student/html/index.html"
	@echo "$(CURDIR)/_build/student/notebooks"

# The teacher edition is the book itself (solutions folded, grading notes shown), plus the
# chapter notebooks with the solutions between nbgrader's BEGIN/END SOLUTION markers.
teacher: book
	$(BIN)/python scripts/editions.py teacher
	@echo "$(CURDIR)/_build/teacher/notebooks"

lint: venv vendor
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	node_modules/.bin/prettier --check "lab/src/**/*.{js,css}"

# The book is built (once) by the test session itself: tests/test_book.py.
test: venv vendor chromium lint
	$(BIN)/python -m pytest

# playground/server/voila.py is the server's configuration (a token, a Host allowlist, idle
# kernels culled and their number capped, v1-only kernel websockets: its docstring says why).
# Voila prints the URL to open, with its token. TRUSTED=1: no token, for a laptop no one else
# logs in to; JUPYTER_TOKEN=...: a token of your own.
TRUSTED ?=
playground: venv
	SAMPY_PLAYGROUND_TRUSTED=$(TRUSTED) $(BIN)/voila playground/explorer.ipynb --no-browser \
	  --port=$(PORT) --Voila.ip=127.0.0.1 --Voila.config_file_paths=playground/server

bench: venv
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf _build _vendor _vendor.tmp .pytest_cache .ruff_cache *.egg-info lab/build lab/dist
	find . -path ./.venv -prune -o -path ./node_modules -prune -o \
	  -name __pycache__ -type d -exec rm -rf {} +

clean-all: clean
	rm -rf $(VENV) node_modules
