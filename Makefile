# The verbs people use. Every target installs what it needs first (uv, then the locked
# environment in .venv), so `make serve` and `make test` work on a fresh machine with
# only Python 3.11+. The environment holds the service, every extra of the layer
# (`--all-extras`), the examples' frameworks and the dev tools.

SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: install serve test lint audit bench clean

$(UV):
	@echo "uv not found: installing it into .tools/ (a private virtualenv)"
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv

.venv/bin/bastion: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras
	@touch .venv/bin/bastion

install: .venv/bin/bastion

serve: install
	.venv/bin/bastion serve --host $(HOST) --port $(PORT)

test: install
	.venv/bin/pytest $(PYTEST_ARGS)

lint: install
	.venv/bin/ruff check src tests bench scripts examples
	.venv/bin/ruff format --check src tests bench scripts examples
	.venv/bin/mypy
	.venv/bin/mypy --strict scripts
	.venv/bin/mypy --strict examples
	.venv/bin/bandit -q -c pyproject.toml -r src

# pip-audit over uv.lock: fails on a known vulnerability (audit-allowlist.txt accepts one
# with a reason); says NOTHING WAS AUDITED, and passes, when the service is unreachable.
audit: install
	.venv/bin/python scripts/audit.py --uv $(UV)

bench: install
	../shared/bench/compare.sh --targets bastion,node-seed,fastapi-typical --scenarios read,create,catalog

clean:
	rm -rf .venv .tools var .pytest_cache .mypy_cache .ruff_cache
