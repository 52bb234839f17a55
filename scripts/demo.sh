#!/usr/bin/env bash
# Install the runtime dependencies only (hashed locks), then start llmage on its embedded
# defaults: SQLite under ./var, the built-in `sim` provider, a demo user with balance and an API
# key printed to the terminal.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/llmage serve --demo "$@"
