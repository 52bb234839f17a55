"""`/api/admin/models` over the real server (SQLite and PostgreSQL): every catalog model with its
price; an admin reprices a model in currency units (stored exactly as micro-units, applied to
the very next request and the plaza) and switches a model off and on; bad input is a 400
naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from consolehelp import Browser, error, logged_in

from conftest import Stack

HAPPYHORSE = "o5vfXYD5BURJWRTWpopE5"  # happyhorse-1.0-t2v, per second by resolution
QWEN_PLUS = "qW1bWjyVbtrQ9R0NIJMx1"  # a chat model the sim channel serves


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Iterator[Browser]:
    b, _, _ = logged_in(stack, role="admin")
    yield b
    b.close()


def estimate(stack: Stack, key: str, resolution: str) -> int:
    r = httpx.post(
        f"{stack.url}/llmage/estimate",
        json={"llmid": HAPPYHORSE, "prompt": "a cat", "duration": 5, "resolution": resolution},
        headers={"Authorization": f"Bearer {key}"},
        timeout=20,
    )
    assert r.status_code == 200, r.text
    amount: int = r.json()["amount_micros"]
    return amount


def plaza(stack: Stack, llmid: str) -> dict[str, Any] | None:
    models = httpx.get(f"{stack.url}/llmage/models", timeout=20).json()["data"]
    return next((m for m in models if m["llmid"] == llmid), None)


def patch(b: Browser, llmid: str, body: dict[str, Any]) -> httpx.Response:
    return b.send("PATCH", f"/api/admin/models/{llmid}", body)


def test_lists_every_model_with_its_price(stack: Stack, admin: Browser) -> None:
    r = admin.get("/api/admin/models")
    assert r.status_code == 200, r.text
    by_id = {m["llmid"]: m for m in r.json()["data"]}
    assert len(by_id) == len(stack.platform.catalog.all_entries())
    horse = by_id[HAPPYHORSE]
    assert horse["kind"] == "t2v" and horse["vendor"] and horse["platform"] == "aliyun"
    assert horse["enabled"] is True and horse["overridden"] is False
    assert horse["price"]["rates"]["720p"] == {"amount": "0.600000", "micros": 600000}
    chat = by_id[QWEN_PLUS]["price"]
    assert chat["input_per_mtok"]["micros"] == 800000 and chat["rates"] is None


def test_a_new_price_applies_to_the_next_request_and_the_plaza(
    stack: Stack, admin: Browser
) -> None:
    user = stack.account()
    assert estimate(stack, user.key, "720p") == 5 * 600000
    r = patch(admin, HAPPYHORSE, {"price": {"rates": {"720p": "0.123457"}}})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["price"]["rates"]["720p"]["micros"] == 123457  # exact, no float on the way
    assert out["price"]["rates"]["480p"]["micros"] == 300000  # the others are kept
    assert out["file_price"]["rates"]["720p"]["micros"] == 600000
    assert out["overridden"] is True and out["updated_at"]
    assert estimate(stack, user.key, "720p") == 5 * 123457
    shown = plaza(stack, HAPPYHORSE)
    assert shown is not None and shown["price"]["rates"]["720p"] == "0.123457"
    # A number works as well as a string; a later change merges with the earlier one.
    r = patch(admin, HAPPYHORSE, {"price": {"rates": {"1080p": 2}}})
    assert r.json()["price"]["rates"]["1080p"]["micros"] == 2_000_000
    assert r.json()["price"]["rates"]["720p"]["micros"] == 123457
    r = patch(admin, HAPPYHORSE, {"reset_price": True})
    assert r.status_code == 200 and r.json()["overridden"] is False
    assert estimate(stack, user.key, "720p") == 5 * 600000


def test_a_chat_price_change_is_charged(stack: Stack, admin: Browser) -> None:
    r = patch(admin, QWEN_PLUS, {"price": {"input_per_mtok": "0", "output_per_mtok": "1000"}})
    assert r.status_code == 200, r.text
    try:
        user = stack.account()
        reply = httpx.post(
            f"{stack.url}/v1/chat/completions",
            json={"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]},
            headers=stack.headers(user),
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        out_tokens = reply.json()["usage"]["completion_tokens"]
        balance, held = stack.wait_settled(user.user_id)
        assert held == 0
        assert 100_000_000 - balance == out_tokens * 1000  # 1000 units / 1M tokens, input free
    finally:
        patch(admin, QWEN_PLUS, {"reset_price": True})


def test_a_disabled_model_is_refused_and_hidden(stack: Stack, admin: Browser) -> None:
    user = stack.account()
    r = patch(admin, HAPPYHORSE, {"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False
    try:
        r = httpx.post(
            f"{stack.url}/llmage/estimate",
            json={"llmid": HAPPYHORSE, "prompt": "a cat", "duration": 5},
            headers=stack.headers(user),
            timeout=20,
        )
        assert r.status_code in (400, 404), r.text
        assert plaza(stack, HAPPYHORSE) is None
        listed = {m["llmid"]: m for m in admin.get("/api/admin/models").json()["data"]}
        assert listed[HAPPYHORSE]["enabled"] is False  # still listed for the admin
    finally:
        assert patch(admin, HAPPYHORSE, {"enabled": True}).status_code == 200
    assert estimate(stack, user.key, "720p") == 5 * 600000
    assert plaza(stack, HAPPYHORSE) is not None


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"price": {"rates": {"720p": "-1"}}}, "price.rates.720p"),
        ({"price": {"rates": {"720p": "0.0000001"}}}, "price.rates.720p"),
        ({"price": {"rates": {"720p": True}}}, "price.rates.720p"),
        ({"price": {"rates": {"4k": "1"}}}, "price.rates.4k"),
        ({"price": {"input_per_mtok": "1"}}, "price.input_per_mtok"),
        ({"price": {"settle_rates": {"720p": "1"}}}, "price.settle_rates"),
        ({"enabled": "maybe"}, "enabled"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_changes_name_the_field(
    stack: Stack, admin: Browser, body: dict[str, Any], param: str
) -> None:
    r = patch(admin, HAPPYHORSE, body)
    assert r.status_code == 400, r.text
    assert error(r)["param"] == param
    shown = plaza(stack, HAPPYHORSE)
    assert shown is not None and shown["price"]["rates"]["720p"] == "0.600000"


def test_unknown_model_is_404(admin: Browser) -> None:
    assert admin.get("/api/admin/models/nope").status_code == 404
    assert patch(admin, "nope", {"enabled": False}).status_code == 404
