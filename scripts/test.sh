#!/usr/bin/env bash
# Install, then run every check CI runs: lint, format, types, layer contracts, tests
# (SQLite and PostgreSQL; PostgreSQL at 127.0.0.1:5432 database `test`, or LLMAGE_TEST_PG).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/pytest -q "$@"
