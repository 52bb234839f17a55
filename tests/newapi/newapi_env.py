"""A server for the new-api suites: real llmage (uvicorn, workers on) over SQLite or PostgreSQL,
a sim channel serving the seed 002/004 video models, and a local "internet" that serves a PNG
for any image URL and records webhook POSTs; its host:port is on the fetcher's allow-list
(`fetch_allow_hosts`), which is the only way llmage may fetch from loopback."""

from __future__ import annotations

import io
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from newapi_seeds import SIM_MODELS
from PIL import Image

from conftest import Account, make_settings
from llmage.app import create_app
from llmage.billing.reconcile import Violation, reconcile
from llmage.domain.money import parse_amount
from llmage.domain.tasks import TaskRow
from llmage.services.accounts import AccountService
from llmage.services.platform import Platform
from support.backends import database_url
from support.servers import LlmageServer, LoopThread, free_socket

TIMEOUT = httpx.Timeout(30.0)
FAILING_MODEL = "viduq2-turbo"  # served only by a channel whose jobs all fail
GENERATIONS = "/v1/video/generations"


def png(width: int = 320, height: int = 180, color: tuple[int, int, int] = (40, 90, 160)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class LocalWeb:
    """Answers GET with a PNG (recording the path) and POST with 200 (recording the body)."""

    image: bytes = field(default_factory=png)
    fetched: list[str] = field(default_factory=list)
    posted: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    base: str = ""
    host: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._get)
        app.router.add_post("/{tail:.*}", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = free_socket()
        await web.SockSite(self._runner, sock).start()
        self.host = f"127.0.0.1:{sock.getsockname()[1]}"
        self.base = f"http://{self.host}"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _get(self, request: web.Request) -> web.Response:
        self.fetched.append(request.path)
        return web.Response(body=self.image, content_type="image/png")

    async def _post(self, request: web.Request) -> web.Response:
        self.posted.append((request.path, await request.read(), dict(request.headers)))
        return web.Response(text="ok")


class NewApiEnv:
    def __init__(self, backend: str, tmp: Path, url: str) -> None:
        self.backend = backend
        self.admin = LoopThread(f"newapi-{backend}")
        self.web = LocalWeb()
        self.admin.call(self.web.start())
        self.settings = make_settings(
            tmp,
            url,
            fetch_allow_hosts=[self.web.host],
            task_poll_interval_ms=100.0,
            task_idle_poll_seconds=0.1,
            webhook_retry_base_seconds=0.2,
        )
        self.platform = Platform(self.settings)  # lives in `admin`'s loop
        self.admin.call(self.platform.start(migrate=True))
        for name, models, options in (
            ("simvid", SIM_MODELS, {"latency_ms": 300}),
            # Every job on this one ends FAILED upstream (the hold must come back whole).
            ("simfail", [FAILING_MODEL], {"latency_ms": 100, "failure_rate": 1.0}),
        ):
            self.admin.call(
                self.platform.channels.add(
                    name=name,
                    provider="sim",
                    platform="sim",
                    base_url="",
                    credential_enc=None,
                    models=models,
                    options=options,
                )
            )
        self.server = LlmageServer(create_app(self.settings))
        self.url = self.server.url

    def close(self) -> None:
        self.server.stop()
        self.admin.call(self.platform.close())
        self.admin.call(self.web.stop())
        self.admin.stop()

    # -- accounts and money -------------------------------------------------------------------

    def account(self, balance: str = "100") -> Account:
        username = "n" + secrets.token_hex(6)

        async def work() -> Account:
            svc = AccountService(self.platform)
            uid = await self.platform.accounts.create_user(username, "x" * 20)
            if micros := parse_amount(balance):
                await self.platform.ledger.credit(uid, micros, f"test:{username}")
            new = await svc.create_key(uid, name="newapi")
            return Account(uid, new.key, username)

        return self.admin.call(work())

    def balance(self, user_id: int) -> tuple[int, int]:
        return self.admin.call(self.platform.accounts.balance(user_id))

    def reconcile(self) -> list[Violation]:
        return self.admin.call(reconcile(self.platform.db.engine))

    def task(self, task_id: str) -> TaskRow:
        row = self.admin.call(self.platform.task_repo.get(task_id))
        assert row is not None, task_id
        return row

    # -- HTTP -----------------------------------------------------------------------------------

    def submit(self, key: str | None, body: Any, **headers: str) -> httpx.Response:
        sent = {"Content-Type": "application/json", **headers}
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        content = body if isinstance(body, str | bytes) else None
        return httpx.post(
            self.url + GENERATIONS,
            headers=sent,
            content=content,
            json=None if content is not None else body,
            timeout=TIMEOUT,
        )

    def job(self, key: str | None, task_id: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return httpx.get(f"{self.url}{GENERATIONS}/{task_id}", headers=headers, timeout=TIMEOUT)

    def wait(self, key: str, task_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            r = self.job(key, task_id)
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            if body["status"] in ("completed", "failed", "cancelled"):
                return body
            assert time.monotonic() < deadline, f"task {task_id} still {body['status']}"
            time.sleep(0.1)


@contextmanager
def newapi_env(backend: str, tmp: Path) -> Iterator[NewApiEnv]:
    with database_url(backend, tmp) as url:
        env = NewApiEnv(backend, tmp, url)
        try:
            yield env
        finally:
            env.close()
