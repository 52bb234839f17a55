#!/usr/bin/env bash
# Install the runtime dependencies only (hashed locks), then start llmage on its embedded
# defaults: SQLite under ./var, the built-in `sim` provider, a demo user with balance and an API
# key printed to the terminal.
#
# `llmage` itself lives in ./.venv/bin. When ~/.local/bin is on your PATH, a symlink to it is
# put there (only if that name is free or already points into an llmage checkout's .venv);
# otherwise the demo prints the `export PATH=...` line to use.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh

target="$PWD/.venv/bin/llmage"
link="$HOME/.local/bin/llmage"
case ":$PATH:" in
  *":$HOME/.local/bin:"*)
    if [ ! -e "$link" ] && [ ! -L "$link" ]; then
      ln -s "$target" "$link" && echo "linked $link -> $target"
    elif [ -L "$link" ] && [[ "$(readlink "$link")" == */.venv/bin/llmage ]] \
        && [ "$(readlink "$link")" != "$target" ]; then
      ln -sfn "$target" "$link" && echo "relinked $link -> $target"
    fi
    ;;
esac

exec .venv/bin/llmage serve --demo "$@"
