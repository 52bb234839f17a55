"""Shared by the `llmage video|image|tasks` suites (imported by name: tests/cli is on sys.path).

`gen` is a real server (uvicorn on loopback, SQLite) with sim channels that really render MP4s,
covers and PNGs on a short timeline, one funded account, and the environment that points the
real `llmage` executable at both the server and its database."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from conftest import make_settings
from llmage.app import create_app
from llmage.catalog import load_catalog
from llmage.domain.catalog import ModelKind
from llmage.domain.tasks import TaskRow
from llmage.services.accounts import AccountService
from llmage.services.platform import Platform
from support.servers import LlmageServer, LoopThread

LLMAGE = str(Path(sys.executable).with_name("llmage"))
T2V, I2V, R2V = "happyhorse-1.0-t2v", "happyhorse-1.0-i2v", "happyhorse-1.0-r2v"
FIRST_LAST = "doubao-seedance-2-0-260128"  # its image-to-video entry takes first + last frame
FAILING = "wan2.6-t2v"  # served by a channel whose every job fails
SLOW = "viduq3-pro"  # served by a channel whose jobs take ten minutes
T2I, I2I = "qwen-image", "doubao-seedream-4-0-250828"


def llmid(name: str, kind: ModelKind) -> str:
    [entry] = [e for e in load_catalog().by_name(name) if e.kind == kind]
    return entry.llmid


def run_all(
    commands: Sequence[Sequence[str]], envs: Sequence[dict[str, str]], cwd: Path
) -> list[subprocess.CompletedProcess[str]]:
    """Independent commands at once (each is a Python start-up of a second or two)."""
    procs = [
        subprocess.Popen(
            [LLMAGE, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True, encoding="utf-8",
        )
        for args, env in zip(commands, envs, strict=True)
    ]  # fmt: skip
    out = []
    for args, proc in zip(commands, procs, strict=True):
        stdout, stderr = proc.communicate(timeout=90)
        out.append(subprocess.CompletedProcess(args, proc.returncode, stdout, stderr))
    return out


@dataclass
class Gen:
    url: str
    tmp: Path
    admin: LoopThread
    platform: Platform
    env: dict[str, str]
    username: str = ""
    key: str = ""
    files: dict[str, Path] = field(default_factory=dict)

    def run(
        self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        [p] = self.parallel([args], env=env, cwd=cwd)
        return p

    def parallel(
        self,
        commands: Sequence[Sequence[str]],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        envs: Sequence[dict[str, str] | None] = (),
    ) -> list[subprocess.CompletedProcess[str]]:
        extra = list(envs) or [env] * len(commands)
        return run_all(commands, [{**self.env, **(e or {})} for e in extra], cwd or self.tmp)

    def ok(self, *args: str, cwd: Path | None = None) -> list[str]:
        p = self.run(*args, cwd=cwd)
        assert p.returncode == 0, f"llmage {' '.join(args)}:\n{p.stdout}\n{p.stderr}"
        assert "Traceback" not in p.stderr
        return p.stdout.splitlines()

    def task(self, taskid: str) -> TaskRow:
        row = self.admin.call(self.platform.task_repo.get(taskid))
        assert row is not None, taskid
        return row

    def new_account(self, balance: int = 10_000_000_000) -> tuple[str, str]:
        username = "g" + secrets.token_hex(5)

        async def work() -> str:
            svc = AccountService(self.platform)
            uid = await svc.create_user(username, "password-123")
            await self.platform.ledger.credit(uid, balance, f"test:{username}")
            return (await svc.create_key(uid, name="cli")).key

        return username, self.admin.call(work())


@pytest.fixture(scope="module")
def gen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gen]:
    tmp = tmp_path_factory.mktemp("gen")
    url = f"sqlite+aiosqlite:///{tmp / 'llmage.db'}"
    settings = make_settings(
        tmp, url, task_poll_interval_ms=100, task_poll_max_interval_ms=300,
        task_idle_poll_seconds=0.05,
    )  # fmt: skip
    server = LlmageServer(create_app(settings))  # migrates the database on start
    admin = LoopThread("gen-admin")
    platform = Platform(settings)
    try:
        admin.call(platform.start(migrate=False))
        for name, models, options in (
            ("sim-media", [T2V, I2V, R2V, FIRST_LAST, T2I, I2I], {"latency_ms": 700}),
            ("sim-failing", [FAILING], {"latency_ms": 200, "failure_rate": 1}),
            ("sim-slow", [SLOW], {"latency_ms": 600_000}),
        ):
            admin.call(platform.channels.add(
                name=name, provider="sim", platform="sim", base_url="", credential_enc=None,
                models=models, options=options,
            ))  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMAGE_")}
        env.update(
            LLMAGE_DATA_DIR=str(tmp), LLMAGE_DATABASE_URL=url, LLMAGE_LOG_LEVEL="WARNING",
            LLMAGE_SECRET_KEY=str(settings.secret_key), LLMAGE_BASE_URL=server.url,
            PYTHONIOENCODING="utf-8", TERM="xterm-256color",
        )  # fmt: skip
        g = Gen(url, tmp, admin, platform, env)
        g.username, g.key = g.new_account()
        g.env["LLMAGE_API_KEY"] = g.key
        for name, color in (("first.png", "red"), ("last.png", "blue")):
            Image.new("RGB", (64, 48), color).save(tmp / name)
            g.files[name] = tmp / name
        yield g
    finally:
        server.stop()
        admin.call(platform.close())
        admin.stop()


def one_line_error(p: subprocess.CompletedProcess[str], *phrases: str) -> str:
    assert p.returncode != 0, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, p.stderr
    for phrase in phrases:
        assert phrase in errors[0], p.stderr
    return errors[0]


def workdir(gen: Gen) -> Path:
    path = gen.tmp / ("w" + secrets.token_hex(4))
    path.mkdir()
    return path
