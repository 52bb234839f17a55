"""`POST /api/playground/key`: the logged-in user's own playground key, minted by the session
(CSRF-checked): a real key billed to that user like any other; a new one revokes the last."""

from __future__ import annotations

import httpx
from consolehelp import error, logged_in

from conftest import Stack


def chat(stack: Stack, key: str) -> httpx.Response:
    return httpx.post(
        f"{stack.url}/v1/chat/completions",
        json={"model": "qwen3-max", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_the_session_mints_a_key_billed_to_its_user(stack: Stack) -> None:
    b, uid, _ = logged_in(stack)
    r = b.post("/api/playground/key", csrf=False)
    assert r.status_code == 403 and error(r)["code"] == "csrf_failed"
    assert b.post("/api/playground/key", origin="https://evil.example").status_code == 403
    r = b.post("/api/playground/key")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    first = r.json()["key"]
    assert first.startswith("sk-") and r.json()["expires_at"]
    assert chat(stack, first).status_code == 429  # a real key of this user: no money yet
    stack.credit_micros(uid, 10_000_000)
    assert chat(stack, first).status_code == 200
    balance, _ = stack.wait_settled(uid)
    assert 0 < balance < 10_000_000  # charged to the user, as an API call is
    second = b.post("/api/playground/key").json()["key"]
    assert second != first
    assert chat(stack, second).status_code == 200
    assert chat(stack, first).status_code == 401  # revoked by the new one
    names = [k["name"] for k in b.get("/api/keys").json()["data"] if k["status"] == "active"]
    assert names == ["playground"]


def test_only_a_logged_in_user(stack: Stack) -> None:
    r = httpx.post(f"{stack.url}/api/playground/key", timeout=20)
    assert r.status_code == 401
