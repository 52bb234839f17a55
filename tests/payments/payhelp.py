"""Helpers for the payment suites (imported by name: tests/payments is on sys.path).

`PayEnv` is a real llmage server (uvicorn on loopback) over a fresh SQLite or PostgreSQL
database, configured for Alipay against a `FakeAlipay` gateway on loopback (its own RSA key
pairs), with a sim chat channel, plus an admin Platform on the same database for accounts,
sessions, direct SQL and the pending-order job. The server's socket is bound before its settings
are made, so `public_base_url` (and with it the notify URL Alipay is told) is the server itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from conftest import make_settings
from llmage.app import create_app
from llmage.auth.passwords import hash_password
from llmage.billing.reconcile import Violation, reconcile
from llmage.domain.money import parse_amount
from llmage.services.accounts import AccountService
from llmage.services.platform import Platform
from support.backends import database_url
from support.fake_alipay import FakeAlipay
from support.servers import LlmageServer, LoopThread, free_socket

_PASSWORD_HASH = hash_password("password-123")
TIMEOUT = httpx.Timeout(60.0)
CHAT_MODELS = ["qwen3-max"]


@dataclass
class User:
    user_id: int
    username: str
    key: str  # an API key of this user
    session: str  # console session cookie
    csrf: str


class PayEnv:
    def __init__(self, backend: str, tmp: Path, url: str, **overrides: Any) -> None:
        self.backend = backend
        self.admin = LoopThread(f"pay-admin-{backend}")
        self.alipay = FakeAlipay()
        self.admin.call(self.alipay.start())
        sock = free_socket()
        overrides.setdefault("alipay_check_interval_seconds", 3600.0)  # tests run the job
        overrides.setdefault("sim_task_latency_ms", 600_000.0)  # tasks stay running
        self.settings = make_settings(
            tmp,
            url,
            public_base_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
            **self.alipay.settings,
            **overrides,
        )
        self.platform = Platform(self.settings)  # lives in `admin`'s loop
        self.admin.call(self.platform.start(migrate=True))
        self.admin.call(
            self.platform.channels.add(
                name="sim",
                provider="sim",
                platform="sim",
                base_url="",
                credential_enc=None,
                models=[*CHAT_MODELS, *_video_llmids()],
            )
        )
        self.server = LlmageServer(create_app(self.settings), sock=sock)
        self.url = self.server.url

    def close(self) -> None:
        self.server.stop()
        self.admin.call(self.platform.close())
        self.admin.call(self.alipay.stop())
        self.admin.stop()

    # -- accounts -------------------------------------------------------------------------------

    def user(self, balance: str = "0", *, role: str = "user") -> User:
        username = "p" + secrets.token_hex(6)

        async def work() -> User:
            p = self.platform
            uid = await p.accounts.create_user(username, _PASSWORD_HASH, role=role)
            if micros := parse_amount(balance):
                await p.ledger.credit(uid, micros, f"test:{username}")
            key = await AccountService(p).create_key(uid, name="t")
            opened = await p.sessions.open(uid)
            return User(uid, username, key.key, opened.token, opened.csrf)

        return self.admin.call(work())

    def client(self, user: User | None = None, *, csrf: bool = True) -> httpx.AsyncClient:
        """A console client: the user's session cookie, and the CSRF header unless told not."""
        cookies = {}
        headers = {}
        if user is not None:
            cookies = {"llmage_session": user.session, "llmage_csrf": user.csrf}
            if csrf:
                headers["X-CSRF-Token"] = user.csrf
        return httpx.AsyncClient(
            base_url=self.url, cookies=cookies, headers=headers, timeout=TIMEOUT
        )

    # -- money ----------------------------------------------------------------------------------

    def balance(self, user_id: int) -> tuple[int, int]:
        return self.admin.call(self.platform.accounts.balance(user_id))

    def reconcile(self) -> list[Violation]:
        return self.admin.call(reconcile(self.platform.db.engine))

    def sql(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        async def work() -> list[tuple[Any, ...]]:
            async with self.platform.db.engine.connect() as conn:
                return [tuple(r) for r in (await conn.execute(text(query), params)).all()]

        return self.admin.call(work())

    def execute(self, query: str, **params: Any) -> None:
        """A committed write, for tests that break an invariant on purpose (and repair it)."""

        async def work() -> None:
            async with self.platform.db.engine.begin() as conn:
                await conn.execute(text(query), params)

        self.admin.call(work())

    def entries(self, user_id: int, kind: str) -> list[tuple[int, str, str | None, int | None]]:
        """(delta_balance, ref, memo, actor_id) of a user's ledger entries of one kind."""
        return [
            (int(d), str(r), m, a)
            for d, r, m, a in self.sql(
                "SELECT delta_balance, ref, memo, actor_id FROM ledger_entries"
                " WHERE user_id = :u AND kind = :k ORDER BY id",
                u=user_id,
                k=kind,
            )
        ]

    def order_status(self, out_trade_no: str) -> str:
        rows = self.sql("SELECT status FROM topup_orders WHERE out_trade_no = :o", o=out_trade_no)
        assert rows, f"no order {out_trade_no}"
        return str(rows[0][0])


def _video_llmids() -> list[str]:
    from llmage.catalog import load_catalog

    return [e.llmid for e in load_catalog().entries() if e.kind.is_video]


def pay_env(
    backend: str, tmp_path_factory: pytest.TempPathFactory, **overrides: Any
) -> Iterator[PayEnv]:
    tmp = tmp_path_factory.mktemp(f"pay-{backend}")
    with database_url(backend, tmp) as url:
        env = PayEnv(backend, tmp, url, **overrides)
        try:
            yield env
        finally:
            env.close()
