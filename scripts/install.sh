#!/usr/bin/env bash
# Installs everything the project needs into ./.venv (idempotent). Debian packages it needs
# (curl for the examples, ffmpeg for media, wrk for benchmarks) come from apt when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)  # sim media, covers (storage/video_tools)
if [ "${LLMAGE_INSTALL_BENCH:-0}" = "1" ]; then
  command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>/dev/null || true
if [ "${LLMAGE_INSTALL_BROWSER:-0}" = "1" ]; then
  # Browser tests of the console (tests/browser): Playwright drives Debian's chromium, since
  # `playwright install` downloads its own build and fails offline. Only for the test command.
  if ! dpkg -s chromium fonts-wqy-microhei >/dev/null 2>&1; then
    apt_get=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
    [ "$(id -u)" = "0" ] || apt_get=(sudo "${apt_get[@]}")
    "${apt_get[@]}" update -qq
    "${apt_get[@]}" install -y -qq --no-install-recommends chromium fonts-wqy-microhei
  fi
  .venv/bin/python -m pip install -q -e ".[dev,browser]"
else
  .venv/bin/python -m pip install -q -e ".[dev]"
fi
