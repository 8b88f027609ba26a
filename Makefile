PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Installs come from the hash-pinned lock files (`make lock` writes them); the stamp names both the
# lock and pyproject.toml, so a pull that changes either reinstalls on the next make.
LOCK := requirements-dev.lock
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | sha1sum | cut -c1-12)

.PHONY: run test lint format install lock bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(VENV)/bin/python pyproject.toml $(LOCK)
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## make lock: re-resolve pyproject.toml into requirements.lock (runtime, the Dockerfile's) and
## requirements-dev.lock (runtime + test + embedded, make/CI's), every file pinned by hash.
## Run it after any change to the dependencies in pyproject.toml and commit both files. Pins already
## in the files are kept where they still fit; `make lock UPGRADE=1` moves everything to the newest.
UV_COMPILE = $(VENV)/bin/uv pip compile pyproject.toml --quiet --generate-hashes --universal \
	--python-version 3.11 --custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade)
lock: $(VENV)/bin/python
	$(PY) -m pip install --quiet 'uv==$(UV_VERSION)'
	$(UV_COMPILE) -o requirements.lock
	$(UV_COMPILE) --extra test --extra embedded --constraint requirements.lock -o $(LOCK)

## make run: the whole platform on its embedded default at http://127.0.0.1:8000
run: install
	DEBUG=$${DEBUG:-true} $(PY) manage.py dev

## make test: install, lint, run the whole suite
test: install lint
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf var/run var/static
