"""A cluster on this machine: two API instances and one poller-only instance, each a real
`llmage serve` process, on one PostgreSQL database, the local Redis (a private key prefix) and
a local S3 server (moto), plus a fake OpenAI upstream and an admin Platform on the same
database and Redis (what the CLI is to an operator).

  api-a   `llmage serve`                 API + task workers
  api-b   `llmage serve` TASK_WORKERS=0  API only
  poller  `llmage serve --poller-only`   task workers; HTTP answers /healthz and /metrics only

Key and channel caches live for ten minutes here: only the invalidation bus can explain a
change applied within a second.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from moto.server import ThreadedMotoServer
from sqlalchemy import text

from conftest import Account
from llmage.billing.reconcile import Violation, reconcile
from llmage.domain.money import parse_amount
from llmage.services.accounts import AccountService
from llmage.services.platform import Platform
from llmage.settings import Settings
from llmage.storage.s3 import S3Storage
from support.backends import database_url, postgres_available
from support.servers import FakeOpenAI, LoopThread

REDIS_URL = os.environ.get("LLMAGE_TEST_REDIS", "redis://127.0.0.1:6379/0")
SD15_T2V = "CrEMkFQfRCmbmopZsCqLj"  # doubao-seedance-1-5-pro-251215 (seed 000)
SIM_CHAT = ["qwen3-max", "qwen-plus"]
FAKE_CHAT = ["deepseek-chat"]
LLMAGE = str(Path(sys.executable).with_name("llmage"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Instance:
    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        env = {**self.env, "LLMAGE_PORT": str(self.port)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [LLMAGE, "serve", *self.args], env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def wait_ready(self, deadline: float) -> None:
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start: {self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no draining; what a crash or an OOM kill does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.kill()

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        body = httpx.get(self.url + "/metrics", timeout=10).text
        want = name + (
            "{" + ",".join(f'{k}="{v}"' for k, v in (labels or {}).items()) + "}" if labels else ""
        )
        for line in body.splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        return None


@dataclass
class Cluster:
    a: Instance
    b: Instance
    poller: Instance
    admin: LoopThread
    platform: Platform  # in `admin`'s loop: call through admin.call
    upstream: FakeOpenAI
    settings: Settings
    instances: list[Instance] = field(default_factory=list)

    @property
    def apis(self) -> list[Instance]:
        return [self.a, self.b]

    def account(self, balance: str = "100", **key_options: Any) -> Account:
        username = "c" + secrets.token_hex(5)

        async def work() -> Account:
            svc = AccountService(self.platform)
            uid = await svc.create_user(username, "password-123")
            if micros := parse_amount(balance):
                await self.platform.ledger.credit(uid, micros, f"test:{username}")
            new = await svc.create_key(uid, name="cluster", **key_options)
            return Account(uid, new.key, username)

        return self.admin.call(work())

    def credit_micros(self, user_id: int, micros: int) -> None:
        self.admin.call(self.platform.ledger.credit(user_id, micros, f"t:{secrets.token_hex(8)}"))

    def balance(self, user_id: int) -> tuple[int, int]:
        return self.admin.call(self.platform.accounts.balance(user_id))

    def sql(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        async def work() -> list[tuple[Any, ...]]:
            async with self.platform.db.engine.connect() as conn:
                return [tuple(r) for r in (await conn.execute(text(query), params)).all()]

        return self.admin.call(work())

    def reconcile(self) -> list[Violation]:
        return self.admin.call(reconcile(self.platform.db.engine))

    @staticmethod
    def headers(acc: Account) -> dict[str, str]:
        return {"Authorization": f"Bearer {acc.key}"}


def _env(base: dict[str, str], **extra: str) -> dict[str, str]:
    return {**base, **extra}


@contextmanager
def running_cluster(tmp: Path) -> Iterator[Cluster]:
    if reason := postgres_available():
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    s3.start()
    host, port = s3.get_host_and_port()
    endpoint, bucket = f"http://{host}:{port}", "media-" + secrets.token_hex(4)
    storage = S3Storage(endpoint, bucket, "AKIAEXAMPLE", "secret-example", "us-east-1")
    asyncio.run(_create_bucket(storage))
    admin = LoopThread("cluster-admin")
    upstream = FakeOpenAI()
    instances: list[Instance] = []
    try:
        with database_url("postgres", tmp) as db_url:
            base = {k: v for k, v in os.environ.items() if not k.startswith("LLMAGE_")} | {
                "LLMAGE_DATABASE_URL": db_url,
                "LLMAGE_SECRET_KEY": Fernet.generate_key().decode(),
                "LLMAGE_REDIS_URL": REDIS_URL,
                "LLMAGE_REDIS_PREFIX": f"t-cluster-{secrets.token_hex(4)}:",
                "LLMAGE_STORAGE_BACKEND": "s3",
                "LLMAGE_S3_ENDPOINT": endpoint,
                "LLMAGE_S3_BUCKET": bucket,
                "LLMAGE_S3_ACCESS_KEY": "AKIAEXAMPLE",
                "LLMAGE_S3_SECRET_KEY": "secret-example",
                "LLMAGE_KEY_CACHE_TTL": "600",
                "LLMAGE_CHANNEL_CACHE_TTL": "600",
                "LLMAGE_TASK_LEASE_SECONDS": "2",
                "LLMAGE_TASK_POLL_INTERVAL_MS": "100",
                "LLMAGE_TASK_IDLE_POLL_SECONDS": "0.1",
                "LLMAGE_LOG_JSON": "false",
                "LLMAGE_LOG_LEVEL": "WARNING",
            }
            settings = Settings(
                data_dir=tmp / "admin",
                **{k[7:].lower(): v for k, v in base.items() if k.startswith("LLMAGE_")},
            )
            platform = Platform(settings)
            admin.call(platform.start(migrate=True))  # migrated once, before any instance
            admin.call(upstream.start())
            admin.call(_channels(platform, upstream))
            a = Instance("api-a", [], _env(base, LLMAGE_DATA_DIR=str(tmp / "a")), tmp / "a.log")
            b = Instance(
                "api-b",
                [],
                _env(base, LLMAGE_DATA_DIR=str(tmp / "b"), LLMAGE_TASK_WORKERS="false"),
                tmp / "b.log",
            )
            poller = Instance(
                "poller",
                ["--poller-only"],
                _env(base, LLMAGE_DATA_DIR=str(tmp / "p")),
                tmp / "p.log",
            )
            instances = [a, b, poller]
            for inst in instances:
                inst.start()
            deadline = time.monotonic() + 90
            for inst in instances:
                inst.wait_ready(deadline)
            cluster = Cluster(a, b, poller, admin, platform, upstream, settings, instances)
            try:
                yield cluster
            finally:
                for inst in cluster.instances:
                    inst.stop()
                admin.call(platform.close())
    finally:
        for inst in instances:
            inst.kill()
        admin.call(upstream.stop())
        admin.stop()
        s3.stop()


async def _create_bucket(storage: S3Storage) -> None:
    try:
        await storage.ensure_bucket()
    finally:
        await storage.close()


async def _channels(p: Platform, upstream: FakeOpenAI) -> None:
    await p.channels.add(
        name="sim-chat",
        provider="sim",
        platform="sim",
        base_url="",
        credential_enc=None,
        models=SIM_CHAT,
    )
    await p.channels.add(
        name="sim-video",
        provider="sim",
        platform="sim",
        base_url="",
        credential_enc=None,
        models=[SD15_T2V],
        options={"latency_ms": 300},
    )
    await p.channels.add(
        name="fake",
        provider="openai_compat",
        platform="fakeplat",
        base_url=upstream.url,
        credential_enc=p.box.seal(upstream.api_key),
        models=FAKE_CHAT,
        priority=10,
    )
