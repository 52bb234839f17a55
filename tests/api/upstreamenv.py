"""A real llmage server over a fresh database whose channels point at scripted upstreams (see
support/scripted.py), for the suites about what crosses the upstream boundary: secrets, steering
fields, deadlines, disconnects. Imported by name (tests/api is on sys.path).

Channels are added before the server starts, so its channel cache sees them at once; each one
has its own platform, so `/{platform}/v1/chat/completions` pins a request to one upstream.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import inspect, text

from conftest import Account, make_settings
from llmage.app import create_app
from llmage.auth.passwords import hash_password
from llmage.db.repos.usage import UsageRecord
from llmage.domain.money import parse_amount
from llmage.services.accounts import AccountService
from llmage.services.platform import Platform
from llmage.settings import Settings
from support.backends import database_url
from support.servers import LlmageServer, LoopThread

TIMEOUT = httpx.Timeout(30.0)
_PASSWORD_HASH = hash_password("password-123")


@dataclass
class ChannelDef:
    platform: str  # also the channel's name
    base_url: str
    key: str
    models: tuple[str, ...] = ("deepseek-chat",)


class UpstreamEnv:
    def __init__(self, backend: str, settings: Settings, admin: LoopThread) -> None:
        self.backend = backend
        self.settings = settings
        self.admin = admin
        self.platform = Platform(settings)  # lives in `admin`'s loop, no workers
        self.server: LlmageServer | None = None

    # -- life ---------------------------------------------------------------------------------

    def start(self, channels: list[ChannelDef], routes: dict[str, Any] | None = None) -> None:
        """Channels first, then the server; `routes` (path -> endpoint) are added to its app."""
        self.admin.call(self.platform.start(migrate=True))
        for ch in channels:
            self.admin.call(
                self.platform.channels.add(
                    name=ch.platform,
                    provider="openai_compat",
                    platform=ch.platform,
                    base_url=ch.base_url,
                    credential_enc=self.platform.box.seal(ch.key),
                    models=list(ch.models),
                )
            )
        app = create_app(self.settings)
        for path, endpoint in (routes or {}).items():
            app.add_api_route(path, endpoint)
        self.server = LlmageServer(app)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.admin.call(self.platform.close())

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def app_platform(self) -> Platform:
        """The server's own Platform (it lives in the server's loop)."""
        assert self.server is not None
        return self.server.app.state.platform  # type: ignore[no-any-return]

    # -- accounts, money, records -------------------------------------------------------------

    def account(self, balance: str = "100") -> Account:
        username = "h" + secrets.token_hex(6)

        async def work() -> Account:
            uid = await self.platform.accounts.create_user(username, _PASSWORD_HASH)
            await self.platform.ledger.credit(uid, parse_amount(balance), f"test:{username}")
            new = await AccountService(self.platform).create_key(uid, name="t")
            return Account(uid, new.key, username)

        return self.admin.call(work())

    def balance(self, user_id: int) -> tuple[int, int]:
        return self.admin.call(self.platform.accounts.balance(user_id))

    def wait_released(self, user_id: int, timeout: float = 15) -> tuple[int, int]:
        """Settlements of cancelled calls are queued, not awaited: wait until nothing is held."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.balance(user_id)
            if found[1] == 0 or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def usage(self, usage_id: str) -> UsageRecord | None:
        return self.admin.call(self.platform.usage.get(usage_id))

    def dump(self) -> dict[str, list[str]]:
        """Every row of every table, as text, by table."""

        async def work() -> dict[str, list[str]]:
            async with self.platform.db.engine.connect() as conn:
                names = await conn.run_sync(lambda c: inspect(c).get_table_names())
                out = {}
                for name in names:
                    rows = (await conn.execute(text(f'SELECT * FROM "{name}"'))).all()
                    out[name] = [repr(tuple(r)) for r in rows]
                return out

        return self.admin.call(work())

    # -- HTTP ---------------------------------------------------------------------------------

    def chat(self, acc: Account, path: str, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {acc.key}"}
        return httpx.post(self.url + path, json=body, headers=headers, timeout=TIMEOUT, **kwargs)

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics", timeout=TIMEOUT).text


@contextmanager
def upstream_env(
    backend: str,
    tmp: Path,
    channels: list[ChannelDef],
    routes: dict[str, Any] | None = None,
    **overrides: Any,
) -> Iterator[UpstreamEnv]:
    admin = LoopThread(f"upstream-env-{backend}")
    try:
        with database_url(backend, tmp) as url:
            env = UpstreamEnv(backend, make_settings(tmp, url, **overrides), admin)
            try:
                env.start(channels, routes)
                yield env
            finally:
                env.close()
    finally:
        admin.stop()
