"""The acceptance test for admission: a balance that covers exactly 10 calls, 200 calls at once
over real HTTP, and exactly 10 reach the upstream — never a negative balance."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from conftest import Account, Stack
from llmage.domain.catalog import ChatPrice
from llmage.domain.money import token_cost
from llmage.domain.tokens import prompt_token_ceiling
from support.servers import FakeOpenAI

CALLS = 200
AFFORDABLE = 10
MAX_TOKENS = 16
MESSAGES = [{"role": "user", "content": "Say something short about money."}]


def exact_hold(stack: Stack) -> tuple[int, int]:
    """(hold, prompt token ceiling) for the fixed request body, the way ChatService.quote does."""
    found = stack.platform.catalog.chat_model("deepseek-chat")
    assert found is not None
    price = found[0].price
    assert isinstance(price, ChatPrice)
    ceiling = prompt_token_ceiling(MESSAGES, stack.settings.image_token_estimate)
    hold = token_cost(ceiling, price.input_per_mtok) + token_cost(MAX_TOKENS, price.output_per_mtok)
    return hold, ceiling


def funded_account(stack: Stack, upstream: FakeOpenAI) -> tuple[Account, int]:
    hold, ceiling = exact_hold(stack)
    assert hold > 0
    # The upstream reports exactly the worst case, so every capture equals its hold.
    upstream.usage = {"prompt_tokens": ceiling, "completion_tokens": MAX_TOKENS}
    upstream.delay = 0.05  # keep the winners' holds open while the losers arrive
    acct = stack.account("0")
    stack.credit_micros(acct.user_id, AFFORDABLE * hold)
    assert stack.balance(acct.user_id) == (AFFORDABLE * hold, 0)
    return acct, hold


async def sample_available(stack: Stack, uid: int, stop: asyncio.Event, seen: list[int]) -> None:
    while not stop.is_set():
        balance, held = await asyncio.to_thread(stack.balance, uid)
        seen.append(balance)
        seen.append(balance - held)
        await asyncio.sleep(0.005)


def body(stream: bool) -> dict[str, Any]:
    return {
        "model": "deepseek-chat",
        "messages": MESSAGES,
        "max_tokens": MAX_TOKENS,
        "stream": stream,
    }


def client(stack: Stack, acct: Account) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=stack.url,
        headers=stack.headers(acct),
        limits=httpx.Limits(max_connections=CALLS + 10, max_keepalive_connections=CALLS + 10),
        timeout=httpx.Timeout(30.0),
    )


def assert_rejections(rejected: list[tuple[int, dict[str, Any], httpx.Headers]]) -> None:
    assert len(rejected) == CALLS - AFFORDABLE
    for status, payload, headers in rejected:
        assert status == 429, payload
        assert payload["error"]["code"] == "insufficient_quota", payload
        assert payload["error"]["type"] == "insufficient_quota", payload
        assert headers.get("x-should-retry") == "false"


def test_200_concurrent_calls_exactly_10_succeed(stack: Stack, upstream: FakeOpenAI) -> None:
    acct, hold = funded_account(stack, upstream)

    async def race() -> tuple[list[httpx.Response], list[int]]:
        stop, seen = asyncio.Event(), []
        sampler = asyncio.create_task(sample_available(stack, acct.user_id, stop, seen))
        async with client(stack, acct) as c:
            responses = await asyncio.gather(
                *(c.post("/v1/chat/completions", json=body(False)) for _ in range(CALLS))
            )
        stop.set()
        await sampler
        return responses, seen

    responses, seen = asyncio.run(race())
    ok = [r for r in responses if r.status_code == 200]
    assert len(ok) == AFFORDABLE, sorted({r.status_code for r in responses})
    assert_rejections([(r.status_code, r.json(), r.headers) for r in responses if r not in ok])
    for r in ok:
        assert r.json()["choices"][0]["message"]["content"] == "fake answer"
        assert r.headers["x-llmage-usage-id"]
    assert len(upstream.requests) == AFFORDABLE
    assert seen and min(seen) >= 0
    assert stack.balance(acct.user_id) == (0, 0)
    assert stack.reconcile() == []

    # Every winner was charged exactly its hold.
    records = stack.admin.call(stack.platform.usage.list(acct.user_id))
    assert len([u for u in records if u.status == "ok"]) == AFFORDABLE
    assert all(u.amount == hold for u in records if u.status == "ok")


def test_200_concurrent_streams_exactly_10_succeed(stack: Stack, upstream: FakeOpenAI) -> None:
    acct, _ = funded_account(stack, upstream)

    async def one(c: httpx.AsyncClient) -> tuple[int, Any, httpx.Headers]:
        async with c.stream("POST", "/v1/chat/completions", json=body(True)) as r:
            raw = await r.aread()
        if r.status_code == 200:
            return 200, raw.decode(), r.headers
        return r.status_code, httpx.Response(r.status_code, content=raw).json(), r.headers

    async def race() -> tuple[list[tuple[int, Any, httpx.Headers]], list[int]]:
        stop, seen = asyncio.Event(), []
        sampler = asyncio.create_task(sample_available(stack, acct.user_id, stop, seen))
        async with client(stack, acct) as c:
            results = await asyncio.gather(*(one(c) for _ in range(CALLS)))
        stop.set()
        await sampler
        return results, seen

    results, seen = asyncio.run(race())
    ok = [r for r in results if r[0] == 200]
    assert len(ok) == AFFORDABLE, sorted({r[0] for r in results})
    assert_rejections([r for r in results if r[0] != 200])
    for _, text, _ in ok:
        assert "tok4" in text and text.rstrip().endswith("data: [DONE]")
    assert len(upstream.requests) == AFFORDABLE
    assert all(req["stream"] is True for req in upstream.requests)
    assert stack.wait_settled(acct.user_id) == (0, 0)
    assert seen and min(seen) >= 0
    assert stack.reconcile() == []
