# The two set-up commands of the README, plus the pieces they are made of.
PY ?= python3

.PHONY: install demo up test

install:
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'

## Start the embedded stack (Temporal dev server, Postgres, a worker) and run one recorded task through it.
demo: install
	$(PY) -m starter demo

## Start the embedded stack and keep it running (Ctrl-C stops it).
up: install
	$(PY) -m starter up

## Run the test suite against a real Temporal dev server, real Postgres and a scripted LLM server.
test: install
	$(PY) -m pytest -q
