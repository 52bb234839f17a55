"""`/api/admin/channels`: admin-only channel operations over the real server (SQLite and
PostgreSQL): add with typed credentials (never shown back), list, show, change, enable, disable,
test (a real chat ping against the fake upstream), remove; clear 4xx naming the field."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from conftest import Account, Stack
from llmage.services.accounts import AccountService

SECRET = "sk-admin-api-secret-" + secrets.token_hex(8)


def admin_account(stack: Stack) -> Account:
    name = "admin" + secrets.token_hex(4)

    async def work() -> Account:
        svc = AccountService(stack.platform)
        uid = await svc.create_user(name, "password-123", role="admin")
        new = await svc.create_key(uid, name="ops")
        return Account(uid, new.key, name)

    return stack.admin.call(work())


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Account:
    return admin_account(stack)


def call(
    stack: Stack, method: str, path: str, acc: Account | None, **kwargs: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {acc.key}"} if acc else {}
    return httpx.request(method, stack.url + path, headers=headers, timeout=30, **kwargs)


def test_only_admins(stack: Stack) -> None:
    user = stack.account()
    assert call(stack, "GET", "/api/admin/channels", None).status_code == 401
    r = call(stack, "GET", "/api/admin/channels", user)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"
    r = call(stack, "POST", "/api/admin/channels", user, json={"name": "x"})
    assert r.status_code == 403


def test_providers_come_from_the_registry(stack: Stack, admin: Account) -> None:
    r = call(stack, "GET", "/api/admin/providers", admin)
    assert r.status_code == 200
    by_name = {p["name"]: p for p in r.json()["data"]}
    assert by_name["sim"]["credential_types"] == []
    assert by_name["openai_compat"]["chat"] and by_name["openai_compat"]["tasks"]


def test_channel_lifecycle_and_a_real_test_call(stack: Stack, admin: Account) -> None:
    name = "ops-" + secrets.token_hex(3)
    r = call(
        stack,
        "POST",
        "/api/admin/channels",
        admin,
        json={
            "name": name,
            "provider": "openai_compat",
            "base_url": stack.upstream.url,
            "api_key": stack.upstream.api_key,
            "models": ["deepseek-chat"],
            "priority": -5,
        },
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["credential"] == "key" and created["credential_type"] == "key"
    assert created["platform"] == "openai_compat"
    assert stack.upstream.api_key not in r.text

    listed = call(stack, "GET", "/api/admin/channels", admin).json()["data"]
    assert name in [c["name"] for c in listed]
    assert stack.upstream.api_key not in str(listed)
    shown = call(stack, "GET", f"/api/admin/channels/{name}", admin).json()
    assert shown["id"] == created["id"]

    ok = call(stack, "POST", f"/api/admin/channels/{created['id']}/test", admin).json()
    assert ok["ok"] and ok["call"] == "chat", ok

    r = call(stack, "PATCH", f"/api/admin/channels/{name}", admin, json={"api_key": SECRET})
    assert r.status_code == 200 and SECRET not in r.text
    bad = call(stack, "POST", f"/api/admin/channels/{name}/test", admin).json()
    assert not bad["ok"] and bad["kind"] == "auth", bad
    assert SECRET not in str(bad)
    scrape = httpx.get(stack.url + "/metrics").text
    assert f'llmage_channel_healthy{{channel="{name}"}} 0.0' in scrape

    r = call(stack, "POST", f"/api/admin/channels/{name}/disable", admin)
    assert r.status_code == 200 and r.json()["enabled"] is False
    r = call(stack, "POST", f"/api/admin/channels/{name}/enable", admin)
    assert r.json()["enabled"] is True
    r = call(stack, "DELETE", f"/api/admin/channels/{name}", admin)
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert call(stack, "GET", f"/api/admin/channels/{name}", admin).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"provider": "nope", "api_key": "k"}, 400, "provider"),
        ({"provider": "openai_compat"}, 400, "api_key or api_keys"),
        ({"provider": "openai_compat", "access_key": "a", "secret_key": "s"}, 400, "credentials"),
        ({"provider": "openai_compat", "api_key": "k", "access_key": "a"}, 400, "credentials"),
        ({"provider": "openai_compat", "api_key": "k", "base_url": "ftp://x"}, 400, "base_url"),
        ({"provider": "openai_compat", "api_key": "k", "weight": 0}, 400, "weight"),
        ({"provider": "sim", "api_key": "k"}, 400, "credentials"),
        ({"provider": "openai_compat", "api_key": "k", "surprise": 1}, 400, "surprise"),
    ],
)
def test_bad_input_names_the_field(
    stack: Stack, admin: Account, body: dict[str, Any], status: int, param: str
) -> None:
    full = {"name": "bad-" + secrets.token_hex(3), "models": ["m"], **body}
    r = call(stack, "POST", "/api/admin/channels", admin, json=full)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param, r.text


def test_duplicate_name_is_a_conflict(stack: Stack, admin: Account) -> None:
    body = {"name": "dup-" + secrets.token_hex(3), "provider": "sim", "models": ["m"]}
    assert call(stack, "POST", "/api/admin/channels", admin, json=body).status_code == 201
    r = call(stack, "POST", "/api/admin/channels", admin, json=body)
    assert r.status_code == 409, r.text
