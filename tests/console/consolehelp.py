"""A console client for the API suites: keeps cookies like a browser and, like the console's own
pages, sends its origin and the CSRF token on unsafe requests (each can be switched off)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from conftest import Stack
from llmage.auth.passwords import hash_password
from llmage.services.accounts import AccountService

TIMEOUT = httpx.Timeout(20.0)
PASSWORD = "password-123"
_PASSWORD_HASH = hash_password(PASSWORD)


class Browser:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.origin = stack.url
        self.http = httpx.Client(base_url=stack.url, timeout=TIMEOUT)

    def close(self) -> None:
        self.http.close()

    @property
    def csrf(self) -> str | None:
        return self.http.cookies.get("llmage_csrf")

    @property
    def session_cookie(self) -> str | None:
        return self.http.cookies.get("llmage_session")

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def send(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        csrf: str | bool | None = True,
        origin: str | bool | None = True,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        h = dict(headers or {})
        if origin is True:
            h["Origin"] = self.origin
        elif isinstance(origin, str):
            h["Origin"] = origin
        token = self.csrf if csrf is True else csrf
        if isinstance(token, str):
            h["X-CSRF-Token"] = token
        return self.http.request(method, path, json=json, headers=h)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return self.send("POST", path, json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.send("DELETE", path, **kwargs)

    def login(self, username: str, password: str = PASSWORD) -> httpx.Response:
        r = self.post("/api/auth/login", {"username": username, "password": password})
        assert r.status_code == 200, r.text
        return r


def new_user(stack: Stack, *, role: str = "user", phone: str | None = None) -> tuple[int, str]:
    """A user with the shared test password, made directly (no throttles, no Argon2 per user)."""
    username = "c" + secrets.token_hex(5)
    uid = stack.admin.call(
        stack.platform.accounts.create_user(username, _PASSWORD_HASH, role=role, phone=phone)
    )
    return uid, username


def logged_in(stack: Stack, *, role: str = "user") -> tuple[Browser, int, str]:
    uid, username = new_user(stack, role=role)
    b = Browser(stack)
    b.login(username)
    return b, uid, username


def api_key(stack: Stack, user_id: int) -> str:
    new = stack.admin.call(AccountService(stack.platform).create_key(user_id, name="script"))
    return new.key


def error(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"}, body
    err: dict[str, Any] = body["error"]
    assert {"message", "type", "param", "code"} <= set(err), err
    return err


def last_code(stack: Stack, phone: str) -> str:
    """The newest code the log sender 'sent' to `phone`."""
    sent = [code for to, code in stack.app_platform.sms.sent if to == phone]  # type: ignore[attr-defined]
    assert sent, f"no SMS sent to {phone}"
    return sent[-1]
