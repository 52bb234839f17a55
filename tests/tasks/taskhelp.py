"""Helpers for the task acceptance suites (imported by name: tests/tasks is on sys.path).

`TaskEnv` is a real llmage server (uvicorn on loopback, workers on) over a fresh SQLite or
PostgreSQL database, plus an admin Platform on the same database (no workers) for accounts,
channels and direct SQL. Channels are added before the server starts, so its channel cache
sees them at once.
"""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import text

from conftest import Account, make_settings
from llmage.app import create_app
from llmage.auth.passwords import hash_password
from llmage.billing.reconcile import Violation, reconcile
from llmage.domain.money import parse_amount
from llmage.domain.tasks import TaskRow
from llmage.services.accounts import AccountService
from llmage.services.platform import Platform
from support.backends import BACKENDS, database_url, postgres_available
from support.servers import LlmageServer, LoopThread

# llmids exactly as in seed 000 (video part).
HH_T2V = "o5vfXYD5BURJWRTWpopE5"  # happyhorse-1.0-t2v
HH_I2V = "7y7kfYM0Xasizyi37WvAZ"  # happyhorse-1.0-i2v
HH_R2V = "6o9n_7u2K927hNlD8_72f"  # happyhorse-1.0-r2v
SD15_T2V = "CrEMkFQfRCmbmopZsCqLj"  # doubao-seedance-1-5-pro-251215 (text-to-video table)
SD15_I2V = "7RTOJD6K8A7RXCMG4GnQ9"  # doubao-seedance-1-5-pro-251215 (image-to-video table)
SD2_T2V = "YjjGgxO_Xma8PWsMjJvps"  # doubao-seedance-2-0-260128
SD2_R2V = "dmPXF65TD1riKj9KaxLmg"  # doubao-seedance-2-0-260128 reference-to-video
WAN_T2V = "u9HZyfDoqU6uKI6M1BTks"  # wan2.6-t2v (duration 5, 10, 15)
VIDU_T2V = "r0ill7L0s6PtBS8mkmg-7"  # viduq3-pro

DREAMINA_I2V = "tb0VSY6WeyGbzaolU1_qE"  # dreamina-seedance-2-0-260128 image-to-video

CHAT_MODELS = ["qwen3-max"]


def video_llmids() -> list[str]:
    """Every video llmid of the shipped catalog: what a demo-like sim channel serves."""
    from llmage.catalog import load_catalog

    return [e.llmid for e in load_catalog().entries() if e.kind.is_video]


TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
OPEN_LOWER = frozenset({"created", "pending", "running"})
TIMEOUT = httpx.Timeout(30.0)

_PASSWORD_HASH = hash_password("password-123")  # one Argon2 hash for every test user


# The shared server: its socket is created as IPPROTO_TCP, so asyncio sets TCP_NODELAY.
TaskServer = LlmageServer


class Gate:
    """A sim channel's `gate_file`: its jobs stay RUNNING (hold open) until the test opens the
    gate, so "while it runs" assertions never race the sim's timer on a slow machine."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"gate-{secrets.token_hex(4)}"

    @property
    def option(self) -> dict[str, str]:
        return {"gate_file": str(self.path)}

    def open(self) -> None:
        self.path.touch()

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass
class ChannelSpec:
    name: str
    models: list[str]
    options: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    platform: str = "sim"


class TaskEnv:
    """A server with workers and an admin handle on one database."""

    def __init__(
        self,
        backend: str,
        tmp: Path,
        url: str,
        channels: Iterable[ChannelSpec],
        **overrides: Any,
    ) -> None:
        self.backend = backend
        self.tmp = tmp
        self.db_url = url
        overrides.setdefault("task_poll_interval_ms", 100.0)
        overrides.setdefault("task_idle_poll_seconds", 0.1)
        self.settings = make_settings(tmp, url, **overrides)
        self.admin = LoopThread(f"admin-{backend}")
        self.platform = Platform(self.settings)  # lives in `admin`'s loop
        self.admin.call(self.platform.start(migrate=True))
        self.channel_ids: dict[str, int] = {}
        for ch in channels:
            self.channel_ids[ch.name] = self.admin.call(
                self.platform.channels.add(
                    name=ch.name,
                    provider="sim",
                    platform=ch.platform,
                    base_url="",
                    credential_enc=None,
                    models=ch.models,
                    options=ch.options,
                    priority=ch.priority,
                )
            )
        self.server: LlmageServer | None = TaskServer(create_app(self.settings))

    # -- server life ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self.server is not None, "server is stopped"
        return self.server.url

    @property
    def app_platform(self) -> Platform:
        """The server's own Platform (lives in the server's loop: read attributes only)."""
        assert self.server is not None
        return self.server.app.state.platform  # type: ignore[no-any-return]

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def start_server(self, **overrides: Any) -> LlmageServer:
        """A new server (new app, new Platform, new poller) on the same database."""
        assert self.server is None
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        self.server = TaskServer(create_app(settings))
        return self.server

    def close(self) -> None:
        self.stop_server()
        self.admin.call(self.platform.close())
        self.admin.stop()

    # -- accounts and money -----------------------------------------------------------------------

    def account(self, balance: str = "1000", **key_options: Any) -> Account:
        username = "t" + secrets.token_hex(6)

        async def work() -> Account:
            uid = await self.platform.accounts.create_user(username, _PASSWORD_HASH)
            if micros := parse_amount(balance):
                await self.platform.ledger.credit(uid, micros, f"test:{username}")
            new = await AccountService(self.platform).create_key(uid, name="t", **key_options)
            return Account(uid, new.key, username)

        return self.admin.call(work())

    def balance(self, user_id: int) -> tuple[int, int]:
        """(balance, held) in micros."""
        return self.admin.call(self.platform.accounts.balance(user_id))

    def reconcile(self) -> list[Violation]:
        return self.admin.call(reconcile(self.platform.db.engine))

    def sql(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        async def work() -> list[tuple[Any, ...]]:
            async with self.platform.db.engine.connect() as conn:
                return [tuple(r) for r in (await conn.execute(text(query), params)).all()]

        return self.admin.call(work())

    def task(self, task_id: str) -> TaskRow:
        row = self.admin.call(self.platform.task_repo.get(task_id))
        assert row is not None, f"no task {task_id}"
        return row

    def terminal_entries(self, hold_id: str) -> list[tuple[str, int, int]]:
        """(kind, delta_balance, delta_held) of every capture/release entry of one hold."""
        return [
            (str(k), int(b), int(h))
            for k, b, h in self.sql(
                "SELECT kind, delta_balance, delta_held FROM ledger_entries"
                " WHERE hold_id = :h AND kind IN ('capture', 'release')",
                h=hold_id,
            )
        ]

    def holds_of(self, user_id: int) -> list[tuple[str, int, str, int | None]]:
        """(id, amount, state, captured) of every hold of a user."""
        return [
            (str(i), int(a), str(s), None if c is None else int(c))
            for i, a, s, c in self.sql(
                "SELECT id, amount, state, captured FROM holds WHERE user_id = :u", u=user_id
            )
        ]

    def tasks_of(self, user_id: int) -> list[tuple[str, str]]:
        return [
            (str(i), str(s))
            for i, s in self.sql("SELECT id, status FROM tasks WHERE user_id = :u", u=user_id)
        ]

    # -- HTTP -------------------------------------------------------------------------------------

    @staticmethod
    def headers(acc: Account, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {acc.key}", **extra}

    def post(self, path: str, acc: Account | None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if acc is not None:
            headers["Authorization"] = f"Bearer {acc.key}"
        return httpx.post(self.url + path, headers=headers, timeout=TIMEOUT, **kwargs)

    def get(self, path: str, acc: Account | None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if acc is not None:
            headers["Authorization"] = f"Bearer {acc.key}"
        return httpx.get(self.url + path, headers=headers, timeout=TIMEOUT, **kwargs)

    def submit(self, acc: Account, body: dict[str, Any], **kwargs: Any) -> str:
        r = self.post("/llmage/video", acc, json=body, **kwargs)
        assert r.status_code == 200, (r.status_code, r.text)
        data = r.json()
        # Seed 000 documents "created"; the answer reads the row after waking the poller, so a
        # fast poller can already have moved it (see the report): any open status, lower case.
        assert data["status"] in OPEN_LOWER, data
        return str(data["taskid"])

    def status(self, acc: Account, task_id: str) -> dict[str, Any]:
        r = self.get("/llmage/tasks", acc, params={"taskid": task_id})
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()  # type: ignore[no-any-return]

    def wait(self, acc: Account, task_id: str, timeout: float = 30) -> dict[str, Any]:
        """The native view once terminal (through GET /llmage/tasks)."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.status(acc, task_id)
            if view["status"] in TERMINAL:
                return view
            assert time.monotonic() < deadline, f"task {task_id} still {view['status']}"
            time.sleep(0.1)

    def wait_all(self, ids: Iterable[str], timeout: float = 60) -> dict[str, str]:
        """Statuses once every task is terminal, read straight from the database."""
        wanted = set(ids)
        deadline = time.monotonic() + timeout
        while True:
            rows = self.sql("SELECT id, status FROM tasks")
            statuses = {str(i): str(s) for i, s in rows if i in wanted}
            if len(statuses) == len(wanted) and all(s in TERMINAL for s in statuses.values()):
                return statuses
            if time.monotonic() > deadline:
                open_ = {i: s for i, s in statuses.items() if s not in TERMINAL}
                raise AssertionError(f"{len(open_)} tasks still open: {list(open_.items())[:5]}")
            time.sleep(0.1)


@contextmanager
def task_env(
    backend: str, tmp: Path, channels: Iterable[ChannelSpec], **overrides: Any
) -> Iterator[TaskEnv]:
    with database_url(backend, tmp) as url:
        env = TaskEnv(backend, tmp, url, list(channels), **overrides)
        try:
            yield env
        finally:
            env.close()


@contextmanager
def envs_for_backends(
    tmp_factory: Any, name: str, channels: Iterable[ChannelSpec], **overrides: Any
) -> Iterator[dict[str, TaskEnv | str]]:
    """One TaskEnv per backend, all up at once (so slow work in both can overlap); a backend
    that cannot run maps to the reason, which `pick` turns into a visible skip."""
    channels = list(channels)
    with ExitStack() as stack:
        out: dict[str, TaskEnv | str] = {}
        for backend in BACKENDS:
            if backend == "postgres" and (reason := postgres_available()):
                if os.environ.get("CI"):
                    pytest.fail(reason)
                out[backend] = reason
                continue
            tmp = tmp_factory.mktemp(f"{name}-{backend}")
            out[backend] = stack.enter_context(task_env(backend, tmp, channels, **overrides))
        yield out


def pick(envs: dict[str, TaskEnv | str], backend: str) -> TaskEnv:
    env = envs[backend]
    if isinstance(env, str):
        pytest.skip(env)
    return env


# -- media -------------------------------------------------------------------------------------


def jpeg_bytes(
    width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 40, 40)
) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "JPEG")
    return buf.getvalue()


def png_bytes(
    width: int = 64, height: int = 48, color: tuple[int, int, int] = (40, 40, 200)
) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def ffprobe_duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return float(out.strip())


def ffprobe_codec(path: Path) -> str:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return out.strip()


def assert_released(env: TaskEnv, acc: Account, row: TaskRow, balance_before: int) -> None:
    """The task's hold ended released in full: nothing charged, one release entry."""
    assert env.balance(acc.user_id) == (balance_before, 0)
    assert env.terminal_entries(row.hold_id) == [("release", 0, -row.quoted)]
    (hold,) = [h for h in env.holds_of(acc.user_id) if h[0] == row.hold_id]
    assert hold[2] == "released", hold
    assert env.reconcile() == []


# -- a small local HTTP server (image host, webhook receiver) -----------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class LocalHTTP:
    """aiohttp on 127.0.0.1 in its own loop: serves `files` on GET, records every request,
    answers POSTs with the next status from `statuses` (then 200)."""

    def __init__(self, files: dict[str, tuple[bytes, str]] | None = None) -> None:
        from aiohttp import web

        self.files = dict(files or {})
        self.statuses: list[int] = []
        self.requests: list[Received] = []
        self._loop = LoopThread("local-http")
        self._web = web

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            self.requests.append(
                Received(
                    request.method, request.path, dict(request.headers), body, time.monotonic()
                )
            )
            if request.method == "GET":
                found = self.files.get(request.path)
                if found is None:
                    return web.Response(status=404)
                return web.Response(body=found[0], content_type=found[1])
            status = self.statuses.pop(0) if self.statuses else 200
            return web.Response(status=status, text="ok" if status < 300 else "no")

        async def start() -> tuple[web.AppRunner, int]:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            return runner, int(port)

        self._runner, self.port = self._loop.call(start())
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"

    def close(self) -> None:
        self._loop.call(self._runner.cleanup())
        self._loop.stop()
