"""Shared fixtures: `stack` is a real llmage server (uvicorn on loopback) on SQLite and on
PostgreSQL, with a fake OpenAI upstream and an admin handle on the same database."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from llmage.app import create_app
from llmage.billing.reconcile import Violation, reconcile
from llmage.domain.money import parse_amount
from llmage.services.accounts import AccountService
from llmage.services.platform import Platform
from llmage.settings import Settings
from support.backends import BACKENDS, database_url
from support.servers import FakeOpenAI, LlmageServer, LoopThread

SIM_MODELS = ["qwen3-max", "qwen-plus", "doubao-seed-1-6-250615"]
FAKE_MODELS = ["deepseek-chat", "deepseek-reasoner"]


@dataclass
class Account:
    user_id: int
    key: str
    username: str


@dataclass
class Stack:
    backend: str
    url: str
    settings: Settings
    server: LlmageServer
    admin: LoopThread
    platform: Platform  # lives in `admin`'s loop: call it through admin.call
    upstream: FakeOpenAI

    def account(self, balance: str = "100", **key_options: object) -> Account:
        username = "u" + secrets.token_hex(5)

        async def work() -> Account:
            svc = AccountService(self.platform)
            uid = await svc.create_user(username, "password-123")
            if parse_amount(balance):
                await self.platform.ledger.credit(uid, parse_amount(balance), f"test:{username}")
            new = await svc.create_key(uid, name="test", **key_options)  # type: ignore[arg-type]
            return Account(uid, new.key, username)

        return self.admin.call(work())

    def credit_micros(self, user_id: int, micros: int) -> None:
        self.admin.call(self.platform.ledger.credit(user_id, micros, f"t:{secrets.token_hex(8)}"))

    def balance(self, user_id: int) -> tuple[int, int]:
        return self.admin.call(self.platform.accounts.balance(user_id))

    def wait_settled(self, user_id: int, timeout: float = 60) -> tuple[int, int]:
        """Stream settlements are queued, not awaited by the response: wait for held == 0."""
        deadline = time.monotonic() + timeout
        while True:
            balance, held = self.balance(user_id)
            if held == 0 or time.monotonic() > deadline:
                return balance, held
            time.sleep(0.02)

    def reconcile(self) -> list[Violation]:
        return self.admin.call(reconcile(self.platform.db.engine))

    def headers(self, account: Account) -> dict[str, str]:
        return {"Authorization": f"Bearer {account.key}"}

    @property
    def app_platform(self) -> Platform:
        """The server's own platform (its caches, throttles, SMS sender), in the server's loop:
        read its plain attributes only."""
        p: Platform = self.server.app.state.platform
        return p


def make_settings(tmp: Path, url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "secret_key": Fernet.generate_key().decode(),
        "key_cache_ttl": 0.5,
        "channel_cache_ttl": 0.2,
        "log_json": False,
        **overrides,
    }
    return Settings(data_dir=tmp, database_url=url, **values)  # type: ignore[arg-type]


@contextmanager
def running_stack(backend: str, tmp: Path, **overrides: object) -> Iterator[Stack]:
    """A server on `backend` with the sim and fake channels; `overrides` go to the settings."""
    with database_url(backend, tmp) as url:
        settings = make_settings(tmp, url, **overrides)
        server = LlmageServer(create_app(settings))
        admin = LoopThread("admin")
        platform = Platform(settings)
        upstream = FakeOpenAI()
        try:
            admin.call(platform.start(migrate=False))
            admin.call(upstream.start())
            admin.call(
                platform.channels.add(
                    name="sim",
                    provider="sim",
                    platform="sim",
                    base_url="",
                    credential_enc=None,
                    models=SIM_MODELS,
                )
            )
            admin.call(
                platform.channels.add(
                    name="fake",
                    provider="openai_compat",
                    platform="fakeplat",
                    base_url=upstream.url,
                    credential_enc=platform.box.seal(upstream.api_key),
                    models=FAKE_MODELS,
                    priority=10,
                )
            )
            yield Stack(backend, server.url, settings, server, admin, platform, upstream)
        finally:
            server.stop()
            admin.call(upstream.stop())
            admin.call(platform.close())
            admin.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(request.param, tmp_path_factory.mktemp(f"stack-{request.param}")) as s:
        yield s


@pytest.fixture
def upstream(stack: Stack) -> Iterator[FakeOpenAI]:
    """The fake upstream, reset to a well-behaved default for each test."""
    up = stack.upstream
    fresh = FakeOpenAI()
    for name in (
        "usage",
        "status",
        "error_body",
        "delay",
        "chunk_delay",
        "stream_chunks",
        "cut_after",
        "stall_after",
        "reasoning",
        "gate",
    ):
        setattr(up, name, getattr(fresh, name))
    up.stall_ended.clear()
    up.requests.clear()
    up.headers.clear()
    yield up
