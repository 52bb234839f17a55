"""LiteLLM's proxy as the comparison gateway: its own virtualenv, config, env.

Facts this module encodes (found by trying, see docs/benchmarks.md):
- 1.106.2 is the newest release whose dependency pins resolve from the registry.
- Without LITELLM_LOCAL_MODEL_COST_MAP=True it fetches its cost map at start.
- Without `prisma` and `opentelemetry-sdk` installed beside it, it retries two
  failing imports on every request, which would inflate its CPU per request.
- Its database mode cannot start offline (Prisma downloads an engine at run
  time), so it runs without DATABASE_URL: master-key auth, no spend tracking.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LITELLM_VERSION = "1.106.2"
PACKAGES = [f"litellm[proxy]=={LITELLM_VERSION}", "prisma", "opentelemetry-sdk"]
MASTER_KEY = "sk-bench"
MODEL = "qwen3-max"

BENCH_DIR = Path(__file__).resolve().parent
VENV = BENCH_DIR / ".venv-litellm"


def _venv_bin(name: str) -> Path:
    return VENV / "bin" / name


def installed_version() -> str | None:
    py = _venv_bin("python")
    if not py.exists():
        return None
    out = subprocess.run(
        [
            str(py),
            "-c",
            "import importlib.metadata as m;"
            "print(m.version('litellm'));"
            "m.version('prisma'); m.version('opentelemetry-sdk'); m.version('uvicorn')",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return out.stdout.strip() if out.returncode == 0 else None


def ensure_venv(log: Path) -> str:
    """Create bench/.venv-litellm and install LiteLLM once; a no-op when cached."""
    if installed_version() == LITELLM_VERSION:
        return LITELLM_VERSION
    print(f"  installing LiteLLM {LITELLM_VERSION} into {VENV} (once; ~1 min)", flush=True)
    if not _venv_bin("python").exists():
        # The base interpreter, not the gateway's venv, so nothing leaks between them.
        base = getattr(sys, "_base_executable", None) or "python3"
        subprocess.run([base, "-m", "venv", str(VENV)], check=True, timeout=300)
    with open(log, "ab") as fh:
        subprocess.run(
            [str(_venv_bin("pip")), "install", "--disable-pip-version-check", "-q", *PACKAGES],
            check=True,
            timeout=1200,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    got = installed_version()
    if got != LITELLM_VERSION:
        raise RuntimeError(f"LiteLLM install gave version {got!r}, wanted {LITELLM_VERSION}")
    return got


def write_config(path: Path, mock_port: int) -> Path:
    # YAML written by hand: the gateway's venv need not have PyYAML.
    path.write_text(
        f"""\
model_list:
  - model_name: {MODEL}
    litellm_params:
      model: openai/{MODEL}
      api_base: http://127.0.0.1:{mock_port}/v1
      api_key: sk-mock

litellm_settings:
  # Defaults of a production deployment, written out so nothing verbose creeps in.
  set_verbose: false
  json_logs: false
  request_timeout: 30
  # No success/failure callbacks: no logging integration is configured by default.
  callbacks: []
  success_callback: []
  failure_callback: []

general_settings:
  master_key: {MASTER_KEY}
  # Ask the upstream for the usage chunk on streams, as llmage does, so both
  # gateways bill streams from upstream usage rather than by re-tokenizing.
  always_include_stream_usage: true
  # No database in this mode: keep LiteLLM from trying to write spend logs.
  disable_spend_logs: true
  disable_error_logs: true
"""
    )
    return path


def env(base: dict[str, str] | None = None) -> dict[str, str]:
    e = dict(base if base is not None else os.environ)
    for var in ("DATABASE_URL", "DIRECT_URL", "REDIS_HOST", "REDIS_URL", "PYTHONPATH"):
        e.pop(var, None)
    e.update(
        {
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no cost-map fetch at start
            "LITELLM_LOG": "ERROR",  # no per-request INFO/DEBUG lines
            "LITELLM_MODE": "PRODUCTION",  # skip .env loading meant for development
            "LITELLM_DONT_SHOW_FEEDBACK_BOX": "true",
            "DISABLE_ADMIN_UI": "True",
            "NO_DOCS": "True",
            "NO_REDOC": "True",
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_OFFLINE": "1",  # tokenizers must never reach for a hub
            "PYTHONUNBUFFERED": "1",
            "VIRTUAL_ENV": str(VENV),
            "PATH": f"{VENV / 'bin'}:{e.get('PATH', '/usr/bin:/bin')}",
        }
    )
    return e


def command(config: Path, port: int) -> list[str]:
    return [
        str(_venv_bin("litellm")),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
