# One command to set up and run the viewer, one to set up and run the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kdviewer-installed

.PHONY: setup run predict test bench wheel-check clean

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

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/kdviewer bench

clean:
	rm -rf $(VENV) build dist *.egg-info
