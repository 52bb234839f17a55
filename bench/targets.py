"""The servers a benchmark run loads, each started, checked ready and described
the same way: direct (wrk straight to the mock), the bare aiohttp pass-through,
llmage on SQLite, on PostgreSQL, and with Redis-backed limits, and LiteLLM.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench import litellm_env, llmage_env, procs

BENCH_DIR = Path(__file__).resolve().parent
TARGETS = ("direct", "passthrough", "llmage", "llmage-pg", "llmage-redis", "litellm")
LLMAGE_TARGETS = ("llmage", "llmage-pg", "llmage-redis")
PASSTHROUGH_KEY = "sk-passthrough"
# PostgreSQL and Redis on this machine (see docs/benchmarks.md); overridable for another host.
PG_ADMIN_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DATABASE = "bench_llmage"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


@dataclass
class Target:
    name: str
    port: int
    path: str
    api_key: str
    cpu_pid: int  # session leader whose process tree's CPU is charged to this target
    version: str
    proc: procs.Proc | None = None  # None when the process is shared (direct = the mock)
    env: dict[str, str] | None = None  # llmage: the environment naming its data dir
    rss: dict[str, float] = field(default_factory=dict)  # MiB: idle after start, peak
    variant: llmage_env.Variant | None = None  # llmage: which database / limits
    db_marker: str | None = None  # in the titles of the database server's backends for it

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"}


def start_mock(log_dir: Path) -> tuple[procs.Proc, int]:
    port = procs.free_port()
    cmd = [sys.executable, str(BENCH_DIR / "mock_upstream.py"), "--port", str(port)]
    mock = procs.start("mock", procs.pinned(cmd, procs.LOAD_CPUS), log_dir)
    procs.wait_http_ok(f"http://127.0.0.1:{port}/healthz", 30, mock)
    return mock, port


def start_passthrough(mock_port: int, log_dir: Path, work: Path) -> Target:
    port = procs.free_port()
    cmd = [
        sys.executable,
        str(BENCH_DIR / "passthrough.py"),
        "--port",
        str(port),
        "--upstream",
        f"http://127.0.0.1:{mock_port}/v1",
        "--key",
        PASSTHROUGH_KEY,
        "--model",
        llmage_env.MODEL,
    ]
    proc = procs.start("passthrough", procs.pinned(cmd, procs.GATEWAY_CPUS), log_dir, cwd=work)
    procs.wait_http_ok(f"http://127.0.0.1:{port}/healthz", 60, proc)
    import aiohttp

    return Target(
        "passthrough",
        port,
        "/v1/chat/completions",
        PASSTHROUGH_KEY,
        proc.pid,
        f"aiohttp {aiohttp.__version__}",
        proc,
    )


def start_litellm(mock_port: int, log_dir: Path, work: Path) -> Target:
    version = litellm_env.ensure_venv(log_dir / "litellm-install.log")
    port = procs.free_port()
    cfg = litellm_env.write_config(work / "litellm.yaml", mock_port)
    proc = procs.start(
        "litellm",
        procs.pinned(litellm_env.command(cfg, port), procs.GATEWAY_CPUS),
        log_dir,
        env=litellm_env.env(),
        cwd=work,  # it may drop files in its working directory
    )
    target = Target(
        "litellm", port, "/v1/chat/completions", litellm_env.MASTER_KEY, proc.pid, version, proc
    )
    # Import + config load takes ~5-40 s depending on the disk cache.
    procs.wait_http_ok(f"http://127.0.0.1:{port}/health/liveliness", 180, proc)
    return target


def llmage_variant(name: str) -> llmage_env.Variant:
    if name == "llmage-pg":
        return llmage_env.Variant(pg_admin_dsn=PG_ADMIN_DSN, pg_database=PG_DATABASE)
    if name == "llmage-redis":
        return llmage_env.Variant(redis_url=REDIS_URL, key_limits=True)
    return llmage_env.Variant()


def start_llmage(name: str, mock_port: int, log_dir: Path, work: Path) -> Target:
    data_dir = work / "llmage-data"
    data_dir.mkdir()
    variant = llmage_variant(name)
    prepared = llmage_env.prepare(data_dir, mock_port, log_dir / f"{name}-setup.log", variant)
    port = procs.free_port()
    proc = procs.start(
        name,
        procs.pinned(llmage_env.serve_command(port), procs.GATEWAY_CPUS),
        log_dir,
        env=prepared.env,
        cwd=work,
    )
    target = Target(
        name,
        port,
        "/v1/chat/completions",
        prepared.api_key,
        proc.pid,
        llmage_env.version(),
        proc,
        prepared.env,
        variant=variant,
        db_marker=f" {variant.pg_database} " if variant.pg_admin_dsn else None,
    )
    procs.wait_http_ok(f"http://127.0.0.1:{port}/healthz", 90, proc)
    return target


def start_target(name: str, mock: procs.Proc, mock_port: int, log_dir: Path, work: Path) -> Target:
    work.mkdir(parents=True, exist_ok=True)
    if name == "direct":
        # The baseline: wrk straight to the mock; its CPU is the mock's.
        return Target("direct", mock_port, "/v1/chat/completions", "sk-mock", mock.pid, "mock")
    if name == "passthrough":
        return start_passthrough(mock_port, log_dir, work)
    if name == "litellm":
        return start_litellm(mock_port, log_dir, work)
    return start_llmage(name, mock_port, log_dir, work)
