"""Chat routing that survives bad channels, end to end on the real server (SQLite and
PostgreSQL): two OpenAI-compatible fakes serve one model; the preferred one answers 500s, hangs,
refuses connections or rejects our key, and every request still succeeds through the other,
charged once at the model's price. The preferred channel's breaker opens (seen in /metrics) and,
after its cool-down on the server's injected clock, one probe closes it again. A key pool with
one bad key keeps working; a channel at its chat concurrency limit answers 429 + Retry-After.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from conftest import Account, Stack
from llmage.domain.credentials import ApiKey, Credentials, KeyPool, dump_secret
from llmage.domain.money import token_cost
from support.servers import FakeOpenAI, free_socket

MODEL = "qwen3-vl-plus"  # served by neither of the stack's own channels
TIMEOUT = httpx.Timeout(60.0)


def _price() -> int:
    """What one answer of the fake (7 prompt + 5 completion tokens) costs at the catalog's
    price of MODEL."""
    from llmage.catalog import load_catalog
    from llmage.domain.catalog import ChatPrice

    found = load_catalog().chat_model(MODEL)
    assert found is not None and isinstance(found[0].price, ChatPrice)
    price = found[0].price
    return token_cost(7, price.input_per_mtok) + token_cost(5, price.output_per_mtok)


PRICE = _price()


class Clock:
    """The server's breaker clock: real monotonic time plus an offset a test moves."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@dataclass
class Routes:
    stack: Stack
    a: FakeOpenAI
    b: FakeOpenAI
    tag: str
    clock: Clock
    ids: list[int] = field(default_factory=list)

    def channel(
        self,
        name: str,
        url: str,
        creds: Credentials,
        *,
        priority: int,
        options: dict[str, Any] | None = None,
    ) -> str:
        full = f"{name}-{self.tag}"
        p = self.stack.platform
        cid = self.stack.admin.call(
            p.channels.add(
                name=full,
                provider="openai_compat",
                platform=full,  # `/{name}/v1/...` pins a request to it alone
                base_url=url,
                credential_enc=p.box.seal(dump_secret(creds)),
                credential_type=creds.type,
                models=[MODEL],
                options=options or {},
                priority=priority,
            )
        )
        self.ids.append(int(cid))
        return full

    def ready(self) -> None:
        # The server's channel cache lives this long; after it, the next request reloads.
        time.sleep(self.stack.settings.channel_cache_ttl + 0.1)

    def chat(self, acc: Account, prefix: str = "", **body: Any) -> httpx.Response:
        return httpx.post(
            f"{self.stack.url}{prefix}/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **body},
            headers={"Authorization": f"Bearer {acc.key}"},
            timeout=TIMEOUT,
        )

    def metrics(self) -> str:
        return httpx.get(self.stack.url + "/metrics", timeout=TIMEOUT).text

    def breaker(self, name: str) -> float:
        line = f'llmage_channel_breaker_state{{channel="{name}"}} '
        for row in self.metrics().splitlines():
            if row.startswith(line):
                return float(row[len(line) :])
        raise AssertionError(f"no breaker gauge for {name}")

    def charged(self, acc: Account, before: int) -> int:
        return before - self.stack.wait_settled(acc.user_id)[0]


@pytest.fixture
def routes(stack: Stack) -> Iterator[Routes]:
    a, b = FakeOpenAI(), FakeOpenAI()
    stack.admin.call(a.start())
    stack.admin.call(b.start())
    health = stack.app_platform.directory.health
    clock = Clock()
    real = health.clock
    health.clock = clock
    r = Routes(stack, a, b, secrets.token_hex(3), clock)
    try:
        yield r
    finally:
        for cid in r.ids:
            stack.admin.call(stack.platform.channels.remove(cid))
        health.clock = real
        for up in (a, b):
            if up.gate is not None:
                stack.admin.loop.call_soon_threadsafe(up.gate.set)
            stack.admin.call(up.stop())
        r.ready()


def _good(r: Routes, options: dict[str, Any] | None = None) -> str:
    return r.channel("b", r.b.url, ApiKey(r.b.api_key), priority=10, options=options)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_500s_fail_over_open_the_breaker_and_a_probe_closes_it(
    routes: Routes, stream: bool
) -> None:
    r = routes
    r.a.status = 500
    opts = {"breaker_failures": 2, "breaker_cooldown_seconds": 30}
    a = r.channel("a", r.a.url, ApiKey(r.a.api_key), priority=20, options=opts)
    _good(r)
    r.ready()
    acc = r.stack.account()
    before = r.stack.balance(acc.user_id)[0]
    for _ in range(3):
        resp = r.chat(acc, stream=stream)
        assert resp.status_code == 200, resp.text
        if stream:
            assert "tok0" in resp.text and "[DONE]" in resp.text
        else:
            assert resp.json()["choices"][0]["message"]["content"] == "fake answer"
    # Two 500s opened A's breaker: the third request went straight to B.
    assert len(r.a.requests) == 2 and len(r.b.requests) == 3
    assert r.breaker(a) == 2.0
    assert r.charged(acc, before) == 3 * PRICE  # B's answers only, each once

    r.a.status = 200  # A recovers; still skipped while its cool-down lasts
    assert r.chat(acc, stream=stream).status_code == 200
    assert len(r.a.requests) == 2
    r.clock.offset += 31  # the cool-down is over: the next request probes A
    assert r.chat(acc, stream=stream).status_code == 200
    assert len(r.a.requests) == 3
    assert r.breaker(a) == 0.0
    assert r.chat(acc, stream=stream).status_code == 200
    assert len(r.a.requests) == 4 and len(r.b.requests) == 4
    assert r.charged(acc, before) == 6 * PRICE
    assert r.stack.reconcile() == []


def test_a_hanging_channel_times_out_and_fails_over(routes: Routes) -> None:
    r = routes
    r.a.gate = r.stack.admin.call(_event())  # never opened during the request: A hangs
    a = r.channel(
        "a",
        r.a.url,
        ApiKey(r.a.api_key),
        priority=20,
        options={"timeout_seconds": 1, "breaker_failures": 1},
    )
    _good(r)
    r.ready()
    acc = r.stack.account()
    before = r.stack.balance(acc.user_id)[0]
    for stream in (False, True):
        resp = r.chat(acc, stream=stream)
        assert resp.status_code == 200, resp.text
    assert len(r.a.requests) == 1  # opened after one timeout: the stream skipped it
    assert len(r.b.requests) == 2
    assert r.breaker(a) == 2.0
    assert r.charged(acc, before) == 2 * PRICE


def test_a_refused_connection_fails_over(routes: Routes) -> None:
    r = routes
    sock = free_socket()
    dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    sock.close()  # nothing listens there any more: connections are refused
    r.channel("a", dead, ApiKey("sk-unused"), priority=20)
    _good(r)
    r.ready()
    acc = r.stack.account()
    before = r.stack.balance(acc.user_id)[0]
    for stream in (False, True):
        assert r.chat(acc, stream=stream).status_code == 200
    assert len(r.b.requests) == 2
    assert r.charged(acc, before) == 2 * PRICE
    assert 'outcome="retryable"' in r.metrics()


def test_wrong_credential_fails_over_and_is_never_billed(routes: Routes) -> None:
    r = routes
    a = r.channel("a", r.a.url, ApiKey("sk-wrong-credential-0000"), priority=20)
    _good(r)
    r.ready()
    acc = r.stack.account()
    before = r.stack.balance(acc.user_id)[0]
    resp = r.chat(acc)
    assert resp.status_code == 200, resp.text
    assert len(r.a.requests) == 1 and len(r.b.requests) == 1
    assert r.charged(acc, before) == PRICE  # exactly B's price, once
    scrape = r.metrics()
    assert f'llmage_channel_healthy{{channel="{a}"}} 0.0' in scrape
    assert f'llmage_channel_calls_total{{channel="{a}",op="chat",outcome="auth"}}' in scrape

    # Only the wrong channel (pinned to its platform): a clear error, nothing charged.
    mid = r.stack.balance(acc.user_id)[0]
    for stream in (False, True):
        resp = r.chat(acc, prefix=f"/{a}", stream=stream)
        assert resp.status_code == 502, resp.text
        err = resp.json()["error"]
        assert err["code"] == "auth"
        assert "sk-wrong" not in resp.text
    assert r.stack.wait_settled(acc.user_id) == (mid, 0)  # hold released, nothing charged
    assert r.stack.reconcile() == []


def test_a_user_bad_request_never_counts_against_the_channel(routes: Routes) -> None:
    r = routes
    r.a.status = 400
    r.a.error_body = {"error": {"message": "messages[0] is invalid", "param": "messages"}}
    a = r.channel("a", r.a.url, ApiKey(r.a.api_key), priority=20, options={"breaker_failures": 1})
    _good(r)
    r.ready()
    acc = r.stack.account()
    before = r.stack.balance(acc.user_id)[0]
    for _ in range(3):
        resp = r.chat(acc)
        assert resp.status_code == 400, resp.text
    assert len(r.a.requests) == 3 and not r.b.requests  # no failover, breaker still closed
    assert r.breaker(a) == 0.0
    assert r.charged(acc, before) == 0


def test_key_pool_sets_a_bad_key_aside(routes: Routes) -> None:
    r = routes
    pool = KeyPool(("sk-revoked-pool-key-0000", r.a.api_key))
    r.channel("a", r.a.url, pool, priority=20, options={"breaker_failures": 1})
    _good(r)
    r.ready()
    acc = r.stack.account()
    before = r.stack.balance(acc.user_id)[0]
    for i in range(6):
        resp = r.chat(acc, stream=bool(i % 2))
        assert resp.status_code == 200, resp.text
    used = [h.get("Authorization") for h in r.a.headers]
    # The revoked key was tried once, set aside, and the channel kept serving with the other.
    assert used.count("Bearer sk-revoked-pool-key-0000") == 1
    assert used.count(f"Bearer {r.a.api_key}") == 6
    assert not r.b.requests  # no failover: the pool's other key answered
    assert r.charged(acc, before) == 6 * PRICE


def test_chat_concurrency_limit_answers_429_with_retry_after(routes: Routes) -> None:
    r = routes
    r.a.gate = r.stack.admin.call(_event())
    a = r.channel("a", r.a.url, ApiKey(r.a.api_key), priority=20,
                  options={"max_chat_concurrency": 1})  # fmt: skip
    r.ready()
    failover = r.stack.app_platform.chat._failover
    wait = failover.wait
    failover.wait = 0.3  # the bounded wait, shortened for the test (default 5 s)
    acc = r.stack.account()
    before = r.stack.balance(acc.user_id)[0]
    first: dict[str, httpx.Response] = {}
    holder = threading.Thread(target=lambda: first.update(ok=r.chat(acc, prefix=f"/{a}")))
    try:
        holder.start()
        deadline = time.monotonic() + 30
        while not r.a.requests:  # the first call holds the only slot, waiting on the gate
            assert time.monotonic() < deadline
            time.sleep(0.01)
        second = r.chat(acc, prefix=f"/{a}")
        assert second.status_code == 429, second.text
        assert int(second.headers["Retry-After"]) >= 1
        assert second.json()["error"]["code"] == "rate_limit_exceeded"
        assert len(r.a.requests) == 1  # the refused call never reached the upstream
    finally:
        failover.wait = wait
        assert r.a.gate is not None
        r.stack.admin.loop.call_soon_threadsafe(r.a.gate.set)
        holder.join(60)
    assert first["ok"].status_code == 200
    assert r.charged(acc, before) == PRICE  # the 429 cost nothing
    # The slot is free again.
    assert r.chat(acc, prefix=f"/{a}").status_code == 200


async def _event() -> asyncio.Event:
    return asyncio.Event()  # made in the fakes' loop
