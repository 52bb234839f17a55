"""Redis stopped mid-run: a server pointed at a Redis of its own (started here on a free port,
then killed) keeps serving and billing exactly; limits fall back to the process, which the
`llmage_limits_backend` metric and the log say. On both databases: this is about money."""

from __future__ import annotations

import logging
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_redis_limits import closed_port

from conftest import make_settings
from llmage.app import create_app
from llmage.billing.reconcile import reconcile
from llmage.domain.catalog import ChatPrice
from llmage.domain.money import token_cost
from llmage.services.accounts import AccountService
from llmage.services.platform import Platform
from support.backends import BACKENDS, database_url
from support.servers import FakeOpenAI, LlmageServer, LoopThread

CHAT = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = closed_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while (
        subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False
        ).stdout.strip()
        != b"PONG"
    ):
        assert time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0", proc
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def limits_backend(url: str) -> dict[str, float]:
    out = {}
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith("llmage_limits_backend{"):
            out[line.split('"')[1]] = float(line.split()[-1])
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_redis_killed_mid_run(
    backend: str,
    own_redis: tuple[str, subprocess.Popen[bytes]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis_url, redis_proc = own_redis
    with database_url(backend, tmp_path) as url:
        settings = make_settings(
            tmp_path, url, redis_url=redis_url, redis_prefix=f"t-{secrets.token_hex(4)}:"
        )
        admin = LoopThread("outage-admin")
        platform = Platform(settings)
        upstream = FakeOpenAI()
        server = None
        try:
            admin.call(platform.start())
            admin.call(upstream.start())
            admin.call(
                platform.channels.add(
                    name="fake",
                    provider="openai_compat",
                    platform="fakeplat",
                    base_url=upstream.url,
                    credential_enc=platform.box.seal(upstream.api_key),
                    models=["deepseek-chat"],
                )
            )
            server = LlmageServer(create_app(settings))

            async def account(limits: dict[str, int]) -> tuple[int, str]:
                svc = AccountService(platform)
                uid = await svc.create_user("u" + secrets.token_hex(4), "password-123")
                await platform.ledger.credit(uid, 10_000_000, f"t:{uid}")
                return uid, (await svc.create_key(uid, name="k", limits=limits)).key

            uid, key = admin.call(account({"rpm": 1000, "concurrency": 50}))
            h = {"Authorization": f"Bearer {key}"}
            found = platform.catalog.chat_model("deepseek-chat")
            assert found is not None and isinstance(found[0].price, ChatPrice)
            price = found[0].price
            each = token_cost(7, price.input_per_mtok) + token_cost(5, price.output_per_mtok)

            with httpx.Client(base_url=server.url, timeout=30) as c:
                for _ in range(5):
                    assert c.post("/v1/chat/completions", json=CHAT, headers=h).status_code == 200
                assert limits_backend(server.url) == {"redis": 1.0, "local": 0.0}

                redis_proc.send_signal(signal.SIGKILL)
                redis_proc.wait(10)
                with caplog.at_level(logging.WARNING):
                    for _ in range(10):
                        r = c.post("/v1/chat/completions", json=CHAT, headers=h)
                        assert r.status_code == 200, r.text
                assert limits_backend(server.url) == {"redis": 0.0, "local": 1.0}
                assert "limits: Redis unavailable" in caplog.text

                # Limits still hold, counted in this process now.
                _, small = admin.call(account({"rpm": 2}))
                hs = {"Authorization": f"Bearer {small}"}
                codes = [
                    c.post("/v1/chat/completions", json=CHAT, headers=hs).status_code
                    for _ in range(3)
                ]
                assert codes == [200, 200, 429]

            # Billed exactly: fifteen calls at the fake's reported usage, nothing held.
            assert admin.call(platform.accounts.balance(uid)) == (10_000_000 - 15 * each, 0)
            assert admin.call(reconcile(platform.db.engine)) == []
        finally:
            if server is not None:
                server.stop()
            admin.call(upstream.stop())
            admin.call(platform.close())
            admin.stop()
