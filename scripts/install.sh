#!/usr/bin/env bash
# Installs the project into ./.venv from the hashed lock files (idempotent).
#
#   bash scripts/install.sh        runtime only: what `llmage serve` needs (scripts/demo.sh)
#   bash scripts/install.sh dev    runtime + tests, linters, type checker (scripts/test.sh)
#
# Every third-party package comes pinned and hash-checked from requirements/*.lock
# (`pip install --require-hashes`); the project itself is installed editable without
# dependencies and without an isolated build, so nothing unpinned is ever downloaded.
# Refresh the locks with `bash scripts/lock.sh`. Debian packages it needs (curl for the
# examples, ffmpeg for media, wrk for benchmarks) come from apt when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-runtime}
case "$what" in
  runtime | dev) ;;
  *) echo "usage: bash scripts/install.sh [runtime|dev]" >&2; exit 2 ;;
esac

need_apt=()
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)  # sim media, covers (storage/video_tools)
if [ "${LLMAGE_INSTALL_BENCH:-0}" = "1" ]; then
  command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=()
  [ "$(id -u)" = "0" ] || sudo=(sudo)
  # Another install (unattended upgrades, a parallel job) may hold the dpkg lock: wait for it.
  apt_opts=(-o DPkg::Lock::Timeout=600 -qq)
  "${sudo[@]}" apt-get "${apt_opts[@]}" update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y "${need_apt[@]}"
fi

PY=${PYTHON:-python3}
# A dependency added to pyproject.toml without re-locking would install silently incomplete.
want=$("$PY" scripts/lock_inputs.py)
for lock in requirements/runtime.lock requirements/dev.lock; do
  if [ "$(head -1 "$lock")" != "# inputs-sha256: $want" ]; then
    echo "$lock is out of date with pyproject.toml: run 'bash scripts/lock.sh' and commit" \
      "requirements/" >&2
    exit 1
  fi
done

[ -x .venv/bin/python ] || "$PY" -m venv .venv
if [ "$what" = "dev" ] && [ "${LLMAGE_INSTALL_BROWSER:-1}" = "1" ]; then
  # Browser tests of the console (tests/browser): Playwright drives Debian's chromium, since
  # `playwright install` downloads its own build and fails offline. Only for the test command;
  # LLMAGE_INSTALL_BROWSER=0 skips it (the browser suite then skips itself).
  if ! dpkg -s chromium fonts-wqy-microhei >/dev/null 2>&1; then
    sudo=()
    [ "$(id -u)" = "0" ] || sudo=(sudo)
    apt_get=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq)
    "${sudo[@]}" "${apt_get[@]}" update
    "${sudo[@]}" "${apt_get[@]}" install -y --no-install-recommends chromium fonts-wqy-microhei
  fi
fi

pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
"${pip[@]}" --require-hashes -r requirements/runtime.lock
if [ "$what" = "dev" ]; then
  "${pip[@]}" --require-hashes -r requirements/dev.lock
fi
"${pip[@]}" --no-deps --no-build-isolation -e .
