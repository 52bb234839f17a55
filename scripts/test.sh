#!/usr/bin/env bash
# Install (runtime + test dependencies, from the hashed locks), then run every check CI runs:
# lint, format, types, layer contracts, tests (SQLite and PostgreSQL; PostgreSQL at
# 127.0.0.1:5432 database `test`, or LLMAGE_TEST_PG). Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/pytest -q "$@"
