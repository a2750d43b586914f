# Two commands for a fresh machine: `make demo` and `make test`.
# Both create .venv if missing and install the package with every extra and
# the development tools; the stamp file re-runs the install (which also
# rebuilds the C kernels in place) when the build files or the C/C++ sources change.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck pytest bench docs browser clean

setup: $(STAMP)

KERNEL_SOURCES := $(wildcard src/softmaxkit/_kernels/*.c src/softmaxkit/_kernels/*.cc src/softmaxkit/_kernels/*.h)

# The second install builds the JAX extension (XLA FFI handlers) against the jaxlib the
# first one installed: pip's isolated build environment has no jax, and putting jaxlib in
# [build-system] requires would download it (~100 MB) into every build, for users without
# the jax extra too, and could pair the handlers with headers of another jaxlib version.
$(STAMP): pyproject.toml setup.py $(KERNEL_SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,dev,docs]'
	$(BIN)/python -m pip install --quiet 'setuptools>=77' wheel
	$(BIN)/python -m pip install --quiet --no-build-isolation --no-deps -e .
	touch $(STAMP)

# The main job: train the softmax classifier on the embedded digits, then show
# one test image's probability table.
DEMO_OUT := runs/demo

demo: setup
	$(BIN)/softmaxkit train --data digits --out $(DEMO_OUT)
	$(BIN)/softmaxkit predict $(DEMO_OUT)/model.npz --index 3
	@echo "figures: $(DEMO_OUT)/learning_curves.png $(DEMO_OUT)/confusion_matrix.png" \
		"$(DEMO_OUT)/test_examples.png $(DEMO_OUT)/reliability.png; report: $(DEMO_OUT)/report.json"

lint: setup
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: setup
	$(BIN)/mypy

# The site: figures drawn by the library, then the pages and the reference from the
# docstrings, in strict mode (a broken link or a docstring that does not parse fails).
docs: setup
	MPLBACKEND=Agg $(BIN)/python docs/scripts/make_figures.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --quiet

# Headless Chromium for the test that looks at the built site: Debian's package, installed
# where apt-get can (as root); elsewhere the test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
		&& (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) ; } \
		|| echo "chromium not installed: tests/test_docs_site.py will skip its browser test"

# SCIPY_ARRAY_API=1: scikit-learn's estimator checks then also try array-API input
pytest: setup browser
	SCIPY_ARRAY_API=1 $(BIN)/python -m pytest

test: lint typecheck pytest

bench: setup
	$(BIN)/softmaxkit bench

clean:
	rm -rf $(VENV) build site .pytest_cache .mypy_cache .ruff_cache
