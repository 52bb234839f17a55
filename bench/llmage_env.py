"""llmage as the gateway under test: a throwaway data dir, a user with credit,
an API key, one channel to the mock, then `llmage serve` with one worker.

Every request through it takes the full path a paying user's request takes:
key auth, a balance hold, capture on completion and a usage record.

Variants (`Variant`): the database on PostgreSQL instead of SQLite (a fresh
database created before and dropped after), and limits on, counted in Redis
(the bench key gets rpm/tpm/concurrency limits far above what a run reaches,
so every request pays for the check and none is refused).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

MODEL = "qwen3-max"
USER = "bench"


class LlmageUnavailable(RuntimeError):
    """llmage cannot be set up here (CLI missing or a setup command failed)."""


def executable() -> Path:
    # The llmage installed in the venv this harness runs in (sys.executable's).
    return Path(sys.executable).parent / "llmage"


# Limits high enough never to trigger in a bounded run, low enough to be real rules.
KEY_LIMITS = ("--rpm", "100000000", "--tpm", "100000000000", "--concurrency", "100000")


@dataclass(frozen=True)
class Variant:
    pg_admin_dsn: str | None = None  # e.g. postgresql://postgres@127.0.0.1:5432/postgres
    pg_database: str = "bench_llmage"
    redis_url: str | None = None  # e.g. redis://127.0.0.1:6379/13
    key_limits: bool = False

    def database_url(self) -> str | None:
        if self.pg_admin_dsn is None:
            return None
        base = self.pg_admin_dsn.rsplit("/", 1)[0]
        return base.replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + self.pg_database


def _pg(admin_dsn: str, *statements: str) -> None:
    import asyncpg  # llmage's own driver, in the venv this harness runs in

    async def run() -> None:
        conn = await asyncpg.connect(admin_dsn, timeout=30)
        try:
            for stmt in statements:
                await conn.execute(stmt)
        finally:
            await conn.close()

    asyncio.run(run())


def create_database(variant: Variant) -> None:
    """A fresh database each run: dropped first if an interrupted run left it."""
    assert variant.pg_admin_dsn is not None
    name = variant.pg_database
    if not name.replace("_", "").isalnum():
        raise ValueError(f"bad database name {name!r}")
    _pg(
        variant.pg_admin_dsn,
        f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
        f"CREATE DATABASE {name}",
    )


def drop_database(variant: Variant) -> None:
    if variant.pg_admin_dsn is not None:
        _pg(variant.pg_admin_dsn, f"DROP DATABASE IF EXISTS {variant.pg_database} WITH (FORCE)")


@dataclass
class Prepared:
    data_dir: Path
    api_key: str
    env: dict[str, str]
    variant: Variant


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


def prepare(data_dir: Path, mock_port: int, log: Path, variant: Variant | None = None) -> Prepared:
    """Run the setup commands; raises LlmageUnavailable if any is missing or fails."""
    variant = variant or Variant()
    if not executable().exists():
        raise LlmageUnavailable(f"{executable()} does not exist (llmage not installed)")
    env = dict(os.environ)
    env["LLMAGE_DATA_DIR"] = str(data_dir)  # the SQLite file (or the secrets) live here
    url = variant.database_url()
    if url is not None:
        try:
            create_database(variant)
        except Exception as exc:  # no server, auth, asyncpg's own errors
            raise LlmageUnavailable(f"cannot create PostgreSQL database: {exc!r}") from exc
        env["LLMAGE_DATABASE_URL"] = url
    if variant.redis_url is not None:
        env["LLMAGE_REDIS_URL"] = variant.redis_url
        # Own keys: nothing left by another run or another user of this Redis is counted.
        env["LLMAGE_REDIS_PREFIX"] = f"llmage-bench-{uuid.uuid4().hex[:8]}:"
    _cli(["migrate"], env, log)
    _cli(["user", "create", USER, "--password", "bench-password"], env, log)
    _cli(["credit", USER, "100000000"], env, log)  # CNY; never runs out mid-benchmark
    limits = list(KEY_LIMITS) if variant.key_limits else []
    out = _cli(["key", "create", USER, "--name", "bench", "--quiet", *limits], env, log)
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
    return Prepared(data_dir=data_dir, api_key=keys[0], env=env, variant=variant)


def after_run(env: dict[str, str], log: Path, variant: Variant | None = None) -> dict[str, str]:
    """After the server stopped: the money invariants must still hold after
    thousands of concurrent holds and captures, and the user list shows what
    was charged. Reported, not fatal: numbers from a broken ledger are void."""
    out: dict[str, str] = {}
    for name, args in (("reconcile", ["reconcile"]), ("users", ["user", "list"])):
        try:
            out[name] = _cli(args, env, log).strip()[-2000:]
        except LlmageUnavailable as exc:
            out[name] = f"FAILED: {exc}"
    if variant is not None and variant.pg_admin_dsn is not None:
        try:
            drop_database(variant)
        except Exception as exc:  # reported; the next run drops it first anyway
            out["drop_database"] = f"FAILED: {exc!r}"
    return out


def serve_command(port: int) -> list[str]:
    return [str(executable()), "serve", "--host", "127.0.0.1", "--port", str(port)]


def version() -> str:
    try:
        from importlib.metadata import version as v

        return v("llmage")
    except Exception:  # the package may not be installed yet
        return "unknown"
