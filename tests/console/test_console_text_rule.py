"""One edge rule for text: a control character (NUL included: PostgreSQL refuses it) in any
console text field, query or path value is a 400 naming the field, on SQLite and PostgreSQL,
never a driver error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from consolehelp import Browser, error, logged_in

from conftest import Stack


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Iterator[Browser]:
    b, _, _ = logged_in(stack, role="admin")
    yield b
    b.close()


@pytest.mark.parametrize("bad", ["a\x00b", "a\x01b", "tab\x1b[31m", "del\x7f"])
@pytest.mark.parametrize(
    ("method", "path", "body", "param"),
    [
        ("POST", "/api/auth/register", {"username": "{}", "password": "password-123"}, "username"),
        ("POST", "/api/auth/login", {"username": "{}", "password": "password-123"}, "username"),
        ("POST", "/api/keys", {"name": "{}"}, "name"),
        ("POST", "/api/admin/channels", {"name": "{}", "provider": "sim", "models": ["*"]}, "name"),
        (
            "POST",
            "/api/admin/channels",
            {"name": "x", "provider": "{}", "models": ["*"]},
            "provider",
        ),
        ("POST", "/api/admin/redeem-codes", {"count": 1, "amount": "1", "note": "{}"}, "note"),
        ("GET", "/api/admin/tasks?model={}", None, "model"),
        ("GET", "/api/admin/tasks?user={}", None, "user"),
        ("GET", "/api/usage?model={}", None, "model"),
    ],
)
def test_control_characters_are_a_400(
    stack: Stack, admin: Browser, bad: str, method: str, path: str, body: Any, param: str
) -> None:
    if body is not None:
        body = {k: (v.format(bad) if isinstance(v, str) else v) for k, v in body.items()}
        r = admin.send(method, path, body)
    else:
        r = admin.get(path.format(quote(bad)))
    assert r.status_code == 400, (path, r.status_code, r.text)
    assert error(r)["param"] == param


def test_tabs_and_newlines_stay_allowed(admin: Browser) -> None:
    r = admin.post("/api/keys", {"name": "line one\nline\ttwo"})
    assert r.status_code == 201, r.text
