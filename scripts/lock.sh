#!/usr/bin/env bash
# Re-compiles the hashed lock files from pyproject.toml; run it after any change to the
# project's dependencies, its extras or its build requirements, and commit requirements/:
#
#   bash scripts/lock.sh            # keep every pin that still satisfies pyproject.toml
#   bash scripts/lock.sh --upgrade  # move every pin to the newest release allowed
#
#   requirements/runtime.lock  what `llmage serve` needs, plus the build backend that installs
#                              the project itself (scripts/install.sh, scripts/demo.sh)
#   requirements/dev.lock      runtime.lock's exact pins plus the `dev` extra: tests, linters,
#                              type checker (scripts/test.sh)
#
# Both are universal (any OS, any Python the project supports) and carry sha256 hashes of
# every file PyPI serves for each pin, so `pip install --require-hashes` refuses anything else.
# uv does the resolving, from a throwaway virtualenv: the project's own venv is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
upgrade=()
if [ "${1:-}" = "--upgrade" ]; then upgrade=(--upgrade); fi

PY=${PYTHON:-python3}
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$PY" -m venv "$tools/venv"
"$tools/venv/bin/python" -m pip install -q "uv==$UV_VERSION"
uv="$tools/venv/bin/uv"

mkdir -p requirements
digest=$("$PY" scripts/lock_inputs.py)
"$PY" scripts/lock_inputs.py build-requires > "$tools/build.in"
common=(
  --universal --python-version 3.11 --generate-hashes --quiet
  --custom-compile-command "bash scripts/lock.sh"
)

compile() {  # compile OUT ARGS...: write OUT with the inputs' digest on its first line
  local out=$1
  shift
  rm -f "$tools/out.lock"
  # uv keeps the pins it finds in its output file wherever they still fit.
  [ -f "$out" ] && cp "$out" "$tools/out.lock"
  "$uv" pip compile "${common[@]}" "${upgrade[@]}" --output-file "$tools/out.lock" "$@"
  { echo "# inputs-sha256: $digest"; cat "$tools/out.lock"; } > "$out"
}

compile requirements/runtime.lock pyproject.toml "$tools/build.in"
compile requirements/dev.lock pyproject.toml --extra dev --constraint requirements/runtime.lock
echo "locked: requirements/runtime.lock ($(grep -c '^[a-z0-9]' requirements/runtime.lock) packages)," \
  "requirements/dev.lock ($(grep -c '^[a-z0-9]' requirements/dev.lock) packages)"
