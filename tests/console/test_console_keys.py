"""API keys, webhook secret and admin routes of the console API on SQLite and PostgreSQL.

The server here caches keys for an hour: a key revoked in the console (or a user disabled by an
admin) must still stop working at once, so revocation has to clear the cache, not wait for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from consolehelp import api_key, error, logged_in

from conftest import Stack, running_stack
from support.backends import BACKENDS

CHAT = {"model": "qwen3-max", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
NATIVE_CHAT = {"model": "qwen3-max", "prompt": "hi", "max_tokens": 8}


@pytest.fixture(scope="module", params=BACKENDS)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp(f"console-keys-{request.param}")
    with running_stack(request.param, tmp, key_cache_ttl=3600.0) as s:
        yield s


@pytest.fixture(autouse=True)
def fresh_throttles(stack: Stack) -> None:
    stack.app_platform.console_auth.throttle.clear()


def chat(stack: Stack, key: str, path: str = "/v1/chat/completions") -> httpx.Response:
    body = NATIVE_CHAT if path.startswith("/llmage") else CHAT
    return httpx.post(
        stack.url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=20
    )


def test_key_created_in_the_console_works_and_stops_when_revoked(stack: Stack) -> None:
    b, uid, _ = logged_in(stack)
    stack.credit_micros(uid, 5_000_000)
    r = b.post("/api/keys", {"name": "laptop", "spend_limit": "2.5", "expires_days": 30})
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    created = r.json()
    key = created["key"]
    assert key.startswith("sk-") and len(key) == 51
    assert created["name"] == "laptop" and created["status"] == "active"
    assert created["prefix"] == f"{key[:7]}…{key[-4:]}"
    assert created["spend_limit"] == {"amount": "2.500000", "micros": 2_500_000}
    assert created["expires_at"] and created["last_used_at"] is None

    for path in ("/v1/chat/completions", "/llmage/v1/chat/completions", "/sim/v1/chat/completions"):
        used = chat(stack, key, path)
        assert used.status_code == 200, (path, used.text)

    (listed,) = b.get("/api/keys").json()["data"]
    assert "key" not in listed and key not in str(listed)  # shown once, never again
    assert listed["id"] == created["id"] and listed["last_used_at"] is not None
    assert listed["spent"]["micros"] > 0
    assert set(listed) == {
        "id", "name", "prefix", "status", "created_at", "last_used_at", "expires_at",
        "revoked_at", "models", "spend_limit", "spent",
    }  # fmt: skip

    gone = b.delete(f"/api/keys/{created['id']}")
    assert gone.status_code == 200, gone.text
    # The key was cached for an hour a moment ago: revoking must have cleared it.
    refused = chat(stack, key)
    assert refused.status_code == 401, refused.text
    assert chat(stack, key, "/llmage/v1/chat/completions").status_code == 401
    (listed,) = b.get("/api/keys").json()["data"]
    assert listed["status"] == "revoked" and listed["revoked_at"]
    again = b.delete(f"/api/keys/{created['id']}")
    assert again.status_code == 404


def test_model_allow_list_and_bad_key_options(stack: Stack) -> None:
    b, uid, _ = logged_in(stack)
    stack.credit_micros(uid, 5_000_000)
    r = b.post("/api/keys", {"name": "only-plus", "models": ["qwen-plus"]})
    assert r.status_code == 201 and r.json()["models"] == ["qwen-plus"]
    assert chat(stack, r.json()["key"]).status_code == 403  # qwen3-max is not on its list

    bad: list[tuple[dict[str, Any], str]] = [
        ({"name": ""}, "name"),
        ({"name": "x" * 129}, "name"),
        ({"models": ["no-such-model"]}, "models"),
        ({"spend_limit": "-1"}, "spend_limit"),
        ({"spend_limit": "abc"}, "spend_limit"),
        ({"spend_limit": "0.0000001"}, "spend_limit"),
        ({"expires_days": 0}, "expires_days"),
        ({"name": "x", "scope": "all"}, "scope"),
        ({"name": "nul\u0000name"}, "name"),
        ({"models": ["qwen3-max\u0000"]}, "models.0"),
    ]
    for body, param in bad:
        resp = b.post("/api/keys", body)
        assert resp.status_code == 400, (body, resp.text)
        assert error(resp)["param"] == param, (body, resp.json())
    assert len(b.get("/api/keys").json()["data"]) == 1
    for key_id in ("0", "99999999999999999999", "abc"):
        r = b.delete(f"/api/keys/{key_id}")
        assert r.status_code == 400 and error(r)["param"] == "key_id", r.text


def test_another_users_key_is_404(stack: Stack) -> None:
    alice, _, _ = logged_in(stack)
    bob, bob_id, _ = logged_in(stack)
    stack.credit_micros(bob_id, 1_000_000)
    bobs = bob.post("/api/keys", {"name": "bob"}).json()
    r = alice.delete(f"/api/keys/{bobs['id']}")
    assert r.status_code == 404 and error(r)["code"] == "not_found"
    missing = alice.delete("/api/keys/999999")  # answered exactly like a key that is not there
    assert missing.status_code == 404
    assert error(missing)["message"].replace("999999", str(bobs["id"])) == error(r)["message"]
    assert alice.get("/api/keys").json() == {"data": []}
    assert chat(stack, bobs["key"]).status_code == 200  # untouched


def test_webhook_secret_is_per_user_and_rotates(stack: Stack) -> None:
    alice, alice_id, _ = logged_in(stack)
    bob, _, _ = logged_in(stack)
    first = alice.get("/api/webhook-secret")
    assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
    secret = first.json()["secret"]
    assert secret.startswith("whsec_") and len(secret) == 70
    assert first.json()["header"] == "X-Llmage-Signature"
    assert alice.get("/api/webhook-secret").json()["secret"] == secret  # stable
    assert bob.get("/api/webhook-secret").json()["secret"] != secret
    assert alice.post("/api/webhook-secret/rotate", csrf=None).status_code == 403
    rotated = alice.post("/api/webhook-secret/rotate")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != secret and alice.get("/api/webhook-secret").json()["secret"] == new
    # What the sender signs with is what the console shows.
    signing = stack.admin.call(stack.platform.webhook_secrets.signing_key(alice_id))
    assert signing == new.encode()


def test_admin_routes_need_the_admin_role(stack: Stack) -> None:
    user_browser, user_id, _ = logged_in(stack)
    admin_browser, admin_id, _ = logged_in(stack, role="admin")
    user_key, admin_key = api_key(stack, user_id), api_key(stack, admin_id)

    assert httpx.get(f"{stack.url}/api/admin/users").status_code == 401
    r = user_browser.get("/api/admin/users")
    assert r.status_code == 403 and error(r)["code"] == "forbidden"
    r = httpx.get(f"{stack.url}/api/admin/users", headers={"Authorization": f"Bearer {user_key}"})
    assert r.status_code == 403
    r = httpx.get(f"{stack.url}/api/admin/users", headers={"Authorization": "Bearer sk-nope"})
    assert r.status_code == 401

    listing = admin_browser.get("/api/admin/users")
    assert listing.status_code == 200, listing.text
    ids = {u["id"] for u in listing.json()["data"]}
    assert {user_id, admin_id} <= ids
    by_key = httpx.get(
        f"{stack.url}/api/admin/users", headers={"Authorization": f"Bearer {admin_key}"}
    )
    assert by_key.status_code == 200 and {u["id"] for u in by_key.json()["data"]} >= ids

    # Admin writes by session need the CSRF token like any other; by key they do not.
    patch = f"/api/admin/users/{user_id}"
    assert admin_browser.send("PATCH", patch, {"role": "admin"}, csrf=None).status_code == 403
    assert user_browser.send("PATCH", patch, {"role": "admin"}).status_code == 403
    self_lock = admin_browser.send("PATCH", f"/api/admin/users/{admin_id}", {"disabled": True})
    assert self_lock.status_code == 400 and error(self_lock)["param"] == "disabled"
    bad_role = admin_browser.send("PATCH", patch, {"role": "root"})
    assert bad_role.status_code == 400 and error(bad_role)["param"] == "role"
    missing = admin_browser.send("PATCH", "/api/admin/users/999999", {"disabled": True})
    assert missing.status_code == 404

    # Disabling: the user's session and (cached) key stop at once.
    stack.credit_micros(user_id, 1_000_000)
    assert chat(stack, user_key).status_code == 200
    r = httpx.patch(
        f"{stack.url}{patch}",
        json={"disabled": True},
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert r.status_code == 200 and r.json()["disabled"] is True, r.text
    assert user_browser.get("/api/me").status_code == 401
    assert chat(stack, user_key).status_code == 401
    r = admin_browser.send("PATCH", patch, {"disabled": False, "role": "admin"})
    assert r.status_code == 200 and r.json()["role"] == "admin" and not r.json()["disabled"]
    assert chat(stack, user_key).status_code == 200
    # A demoted admin's key loses admin rights at once (the role is not taken from the cache).
    promoted = httpx.get(
        f"{stack.url}/api/admin/users", headers={"Authorization": f"Bearer {user_key}"}
    )
    assert promoted.status_code == 200
    admin_browser.send("PATCH", patch, {"role": "user"})
    demoted = httpx.get(
        f"{stack.url}/api/admin/users", headers={"Authorization": f"Bearer {user_key}"}
    )
    assert demoted.status_code == 403


def test_openapi_documents_the_console_api(stack: Stack) -> None:
    spec = httpx.get(f"{stack.url}/openapi.json").json()
    paths = spec["paths"]
    expected = {
        "/api/auth/register": "post",
        "/api/auth/login": "post",
        "/api/auth/logout": "post",
        "/api/auth/sms-code": "post",
        "/api/auth/sms-login": "post",
        "/api/auth/password": "post",
        "/api/auth/reset": "post",
        "/api/me": "get",
        "/api/keys": "post",
        "/api/keys/{key_id}": "delete",
        "/api/webhook-secret": "get",
        "/api/webhook-secret/rotate": "post",
        "/api/admin/users": "get",
        "/api/admin/users/{user_id}": "patch",
    }
    for path, method in expected.items():
        op = paths[path][method]
        assert op.get("summary"), path
        ok = op["responses"].get("200") or op["responses"].get("201")
        assert ok and "$ref" in str(ok["content"]["application/json"]["schema"]), path
    assert "get" in paths["/api/keys"]
    body = paths["/api/auth/register"]["post"]["requestBody"]["content"]["application/json"]
    schema = spec["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[1]]
    assert set(schema["required"]) == {"username", "password"}
    assert "phone" in schema["properties"]
    assert "401" in paths["/api/me"]["get"]["responses"]
    schemes = spec["components"]["securitySchemes"]
    assert schemes["session"]["in"] == "cookie" and schemes["session"]["name"] == "llmage_session"
    assert schemes["csrf"]["name"] == "X-CSRF-Token"


def test_every_admin_route_refuses_others(stack: Stack) -> None:
    """Walks every documented route: one added under /api/admin/ later is covered too."""
    user_browser, user_id, _ = logged_in(stack)
    user_key = api_key(stack, user_id)
    spec = httpx.get(f"{stack.url}/openapi.json").json()
    routes = [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path))
        for path, ops in spec["paths"].items()
        if path.startswith("/api/admin/")
        for method in ops
    ]
    assert len(routes) >= 2, routes
    for method, path in routes:
        anon = httpx.request(method, stack.url + path, json={})
        assert anon.status_code == 401, (method, path, anon.text)
        as_user = user_browser.send(method, path, {})
        assert as_user.status_code == 403, (method, path, as_user.text)
        by_key = httpx.request(
            method, stack.url + path, json={}, headers={"Authorization": f"Bearer {user_key}"}
        )
        assert by_key.status_code == 403, (method, path, by_key.text)
