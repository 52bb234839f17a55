"""llmage as the gateway under test: a throwaway data dir, a user with credit,
an API key, one channel to the mock, then `llmage serve` with one worker.

Every request through it takes the full path a paying user's request takes:
key auth, a balance hold, capture on completion and a usage record.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MODEL = "qwen3-max"
USER = "bench"


class LlmageUnavailable(RuntimeError):
    """llmage cannot be set up here (CLI missing or a setup command failed)."""


def executable() -> Path:
    # The llmage installed in the venv this harness runs in (sys.executable's).
    return Path(sys.executable).parent / "llmage"


@dataclass
class Prepared:
    data_dir: Path
    api_key: str
    env: dict[str, str]


def _cli(args: list[str], env: dict[str, str], log: Path, timeout: float = 120) -> str:
    cmd = [str(executable()), *args]
    try:
        out = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LlmageUnavailable(f"`llmage {' '.join(args)}` failed: {exc}") from exc
    with open(log, "a") as fh:
        fh.write(f"$ llmage {' '.join(args)}\n[rc={out.returncode}]\n{out.stderr}\n")
    if out.returncode != 0:
        raise LlmageUnavailable(
            f"`llmage {' '.join(args)}` exited {out.returncode}: "
            f"{(out.stderr or out.stdout).strip()[-800:]}"
        )
    return out.stdout


def prepare(data_dir: Path, mock_port: int, log: Path) -> Prepared:
    """Run the setup commands; raises LlmageUnavailable if any is missing or fails."""
    if not executable().exists():
        raise LlmageUnavailable(f"{executable()} does not exist (llmage not installed)")
    env = dict(os.environ)
    env["LLMAGE_DATA_DIR"] = str(data_dir)  # the SQLite file lives here
    _cli(["migrate"], env, log)
    _cli(["user", "create", USER, "--password", "bench-password"], env, log)
    _cli(["credit", USER, "100000000"], env, log)  # CNY; never runs out mid-benchmark
    out = _cli(["key", "create", USER, "--name", "bench", "--quiet"], env, log)
    keys = [t for t in out.split() if t.startswith("sk-")]
    if len(keys) != 1:
        raise LlmageUnavailable(f"`llmage key create --quiet` printed no single sk- key: {out!r}")
    _cli(
        [
            "channel",
            "add",
            "--name",
            "mock",
            "--provider",
            "openai_compat",
            "--base-url",
            f"http://127.0.0.1:{mock_port}/v1",
            "--api-key",
            "sk-mock",
            "--models",
            MODEL,
        ],
        env,
        log,
    )
    return Prepared(data_dir=data_dir, api_key=keys[0], env=env)


def after_run(env: dict[str, str], log: Path) -> dict[str, str]:
    """After the server stopped: the money invariants must still hold after
    thousands of concurrent holds and captures, and the user list shows what
    was charged. Reported, not fatal: numbers from a broken ledger are void."""
    out: dict[str, str] = {}
    for name, args in (("reconcile", ["reconcile"]), ("users", ["user", "list"])):
        try:
            out[name] = _cli(args, env, log).strip()[-2000:]
        except LlmageUnavailable as exc:
            out[name] = f"FAILED: {exc}"
    return out


def serve_command(port: int) -> list[str]:
    return [str(executable()), "serve", "--host", "127.0.0.1", "--port", str(port)]


def version() -> str:
    try:
        from importlib.metadata import version as v

        return v("llmage")
    except Exception:  # the package may not be installed yet
        return "unknown"
