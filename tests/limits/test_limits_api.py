"""Limits through the real server on both databases: 429s in each dialect's shape with
Retry-After and x-ratelimit-* headers, tpm counted from the hold and corrected by the usage,
concurrency slots, and the official `openai` SDK backing off and retrying on our 429."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import openai

from conftest import Stack
from llmage.observability import metrics
from llmage.services.accounts import AccountService
from support.servers import FakeOpenAI

CHAT = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}]}


def requests_with(route: str, status: int) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "llmage_requests_total", {"route": route, "status": str(status)}
    )
    return value or 0.0


def test_rpm_refusals_in_openai_and_native_shapes(stack: Stack, upstream: FakeOpenAI) -> None:
    acct = stack.account("10", limits={"rpm": 2})
    h = stack.headers(acct)
    native = {"model": "deepseek-chat", "prompt": "hi"}
    with httpx.Client(base_url=stack.url, timeout=30) as c:
        assert c.post("/v1/chat/completions", json=CHAT, headers=h).status_code == 200
        assert c.post("/llmage/v1/chat/completions", json=native, headers=h).status_code == 200
        before = stack.balance(acct.user_id)
        r = c.post("/v1/chat/completions", json=CHAT, headers=h)
        assert r.status_code == 429, r.text
        err = r.json()["error"]
        assert err["code"] == "rate_limit_exceeded" and err["type"] == "requests"
        assert "2 requests per minute" in err["message"]
        assert 1 <= int(r.headers["retry-after"]) <= 30
        assert 0 < int(r.headers["retry-after-ms"]) <= 30_000
        assert r.headers["x-ratelimit-limit-requests"] == "2"
        assert r.headers["x-ratelimit-remaining-requests"] == "0"
        assert r.headers["x-ratelimit-reset-requests"].endswith("s")
        assert "x-should-retry" not in r.headers  # SDKs retry a rate limit, by Retry-After

        n = c.post("/llmage/v1/chat/completions", json=native, headers=h)
        assert n.status_code == 429
        assert (
            n.json() == {"error": n.json()["error"]} and "requests per minute" in n.json()["error"]
        )
        assert n.headers["x-ratelimit-limit-requests"] == "2"
    # Refused before the hold: no money moved, the upstream saw only the two admitted calls.
    assert stack.balance(acct.user_id) == before
    assert len(upstream.requests) == 2
    assert stack.reconcile() == []


def test_tpm_counts_the_hold_and_gives_back_what_was_not_used(
    stack: Stack, upstream: FakeOpenAI
) -> None:
    acct = stack.account("10", limits={"tpm": 1000})
    h = stack.headers(acct)
    big = {**CHAT, "max_tokens": 900}  # the hold: ~900 completion tokens + the prompt's ceiling
    with httpx.Client(base_url=stack.url, timeout=30) as c:
        for _ in range(3):
            # Each call used 12 tokens (the fake's usage): settlement gives the rest back,
            # so the next 900-token hold fits again. Without the correction the 2nd is a 429.
            r = c.post("/v1/chat/completions", json=big, headers=h)
            assert r.status_code == 200, r.text
        too_big = c.post("/v1/chat/completions", json={**CHAT, "max_tokens": 2000}, headers=h)
        assert too_big.status_code == 429
        assert too_big.json()["error"]["type"] == "tokens"
        assert too_big.headers["x-should-retry"] == "false"  # no wait makes it fit


def test_user_limits_cover_all_of_a_users_keys(stack: Stack, upstream: FakeOpenAI) -> None:
    acct = stack.account("10")

    async def second_key_and_limit() -> str:
        svc = AccountService(stack.platform)
        await svc.update_user_limits(acct.user_id, {"rpm": 1})
        return (await svc.create_key(acct.user_id, name="second")).key

    other = stack.admin.call(second_key_and_limit())
    with httpx.Client(base_url=stack.url, timeout=30) as c:
        ok = c.post("/v1/chat/completions", json=CHAT, headers=stack.headers(acct))
        assert ok.status_code == 200
        r = c.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {other}"})
        assert r.status_code == 429
        assert r.headers["x-ratelimit-limit-requests"] == "1"


def test_openai_sdk_retries_a_concurrency_429_and_succeeds(
    stack: Stack, upstream: FakeOpenAI
) -> None:
    """One request holds the key's only slot; the SDK's call is refused (429, Retry-After),
    the slot frees, and the SDK's own retry gets through: the server answers it twice."""
    acct = stack.account("10", limits={"concurrency": 1})
    route = "/v1/chat/completions"
    gate = asyncio.Event()
    upstream.gate = gate
    first: dict[str, Any] = {}

    def blocker() -> None:
        with httpx.Client(base_url=stack.url, timeout=30) as c:
            first["r"] = c.post(route, json=CHAT, headers=stack.headers(acct))

    holder = threading.Thread(target=blocker)
    holder.start()
    deadline = time.monotonic() + 20
    while not upstream.requests:  # the blocker holds the slot, waiting at the upstream
        assert time.monotonic() < deadline, "the first request never reached the upstream"
        time.sleep(0.01)

    refused_before = requests_with(route, 429)
    sdk: dict[str, Any] = {}

    def call_with_sdk() -> None:
        client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=acct.key, max_retries=2)
        try:
            sdk["r"] = client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
        except Exception as exc:  # reported below
            sdk["error"] = exc

    caller = threading.Thread(target=call_with_sdk)
    caller.start()
    while requests_with(route, 429) == refused_before:  # the SDK's first try was refused
        assert time.monotonic() < deadline, "the SDK's first attempt was not refused"
        time.sleep(0.01)
    stack.admin.loop.call_soon_threadsafe(gate.set)  # the slot frees once the blocker ends
    holder.join(30)
    assert first["r"].status_code == 200
    caller.join(60)
    assert "error" not in sdk, sdk.get("error")
    assert sdk["r"].choices[0].message.content == "fake answer"
    # The SDK's retry was answered: two upstream calls in all (the blocker and the retry).
    assert requests_with(route, 429) >= refused_before + 1
    assert len(upstream.requests) == 2
    assert stack.wait_settled(acct.user_id)[1] == 0


def test_a_model_override_has_its_own_bucket(stack: Stack, upstream: FakeOpenAI) -> None:
    acct = stack.account("10", limits={"rpm": 10})
    keys = stack.admin.call(stack.platform.accounts.list_keys(acct.user_id))
    stack.admin.call(
        AccountService(stack.platform).update_key_limits(keys[0].id, {"rpm": 1}, "deepseek-chat")
    )
    # Set before the key's first request: the server reads it with the key.
    h = stack.headers(acct)
    sim = {**CHAT, "model": "qwen3-max"}
    with httpx.Client(base_url=stack.url, timeout=30) as c:
        assert c.post("/v1/chat/completions", json=CHAT, headers=h).status_code == 200
        r = c.post("/v1/chat/completions", json=CHAT, headers=h)
        assert r.status_code == 429 and r.headers["x-ratelimit-limit-requests"] == "1"
        for _ in range(3):  # other models: the key's general 10 per minute
            assert c.post("/v1/chat/completions", json=sim, headers=h).status_code == 200
