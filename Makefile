# One command to set up and run the viewer, one to set up and run the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kdviewer-installed

.PHONY: setup run predict test bench wheel-check bundle bundle-check clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Developers get everything (the light `pip install kdviewer` lacks PyTorch: see the README).
# torch/torchvision are pinned first so pip takes the builds on this machine's disk.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[test,train,explain]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/kdviewer

predict: $(STAMP)
	$(BIN)/kdviewer predict --teacher

# Lint first (ruff, pinned in the test extra; rules in pyproject.toml): seconds, before the suite.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/kdviewer bench

# The desktop bundle: PyInstaller over the light install (no PyTorch) in its own environment.
# PyInstaller is pinned to the version `make bundle-check` last passed with.
BUNDLE_VENV ?= .venv-bundle
PYINSTALLER := pyinstaller==6.22.3
BUNDLE_STAMP := $(BUNDLE_VENV)/.kdviewer-bundle

$(BUNDLE_STAMP): pyproject.toml
	$(PY) -m venv $(BUNDLE_VENV)
	$(BUNDLE_VENV)/bin/python -m pip install -q --upgrade pip
	$(BUNDLE_VENV)/bin/python -m pip install -q . $(PYINSTALLER)
	touch $(BUNDLE_STAMP)

# The first install brings any dependency added since, the second this checkout's code itself.
bundle: $(BUNDLE_STAMP)
	$(BUNDLE_VENV)/bin/python -m pip install -q .
	$(BUNDLE_VENV)/bin/python -m pip install -q --no-deps --force-reinstall .
	cd packaging && ../$(BUNDLE_VENV)/bin/pyinstaller --noconfirm --clean --log-level WARN \
		--distpath ../dist --workpath ../build/pyinstaller kdviewer.spec

bundle-check: bundle
	sh packaging/check_bundle.sh dist/kdviewer

clean:
	rm -rf $(VENV) $(BUNDLE_VENV) build dist *.egg-info
