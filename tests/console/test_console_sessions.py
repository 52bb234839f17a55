"""Console sessions and CSRF through the real app on SQLite and PostgreSQL: sign-up and login
set the cookies, /api/me answers the balance, logout and password changes revoke server-side,
unsafe requests need the session's CSRF token and this server's origin."""

from __future__ import annotations

import httpx
import pytest
from consolehelp import PASSWORD, Browser, error, logged_in, new_user

from conftest import Stack


@pytest.fixture(autouse=True)
def fresh_throttles(stack: Stack) -> None:
    # Every request here comes from 127.0.0.1: start each test with clean per-IP counters.
    stack.app_platform.console_auth.throttle.clear()


def test_register_sets_session_cookies_and_me_shows_money(stack: Stack) -> None:
    b = Browser(stack)
    username = "reg_" + stack.backend
    r = b.post("/api/auth/register", {"username": username, "password": PASSWORD}, csrf=None)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["user"]["username"] == username and body["user"]["role"] == "user"
    assert body["csrf_token"] == b.csrf and len(body["csrf_token"]) == 64
    cookies = r.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("llmage_session="))
    csrf = next(c for c in cookies if c.startswith("llmage_csrf="))
    assert "HttpOnly" in session and "samesite=lax" in session.lower() and "Path=/" in session
    assert "HttpOnly" not in csrf and "samesite=lax" in csrf.lower()
    assert "Secure" not in session  # plain http here; https requests get Secure
    # The token never reaches the database: only its SHA-256.
    stored = stack.admin.call(stack.platform.sessions.resolve(b.session_cookie or ""))
    assert stored is not None and stored.session_id != b.session_cookie

    me = b.get("/api/me")
    assert me.status_code == 200, me.text
    assert me.headers["cache-control"] == "no-store"
    m = me.json()
    assert m["username"] == username and m["currency"] == "CNY"
    assert m["balance"] == {"amount": "0.000000", "micros": 0}
    stack.credit_micros(body["user"]["id"], 12_345_678)
    m = b.get("/api/me").json()
    assert m["balance"] == {"amount": "12.345678", "micros": 12_345_678}
    assert m["held"] == {"amount": "0.000000", "micros": 0}
    assert m["available"] == {"amount": "12.345678", "micros": 12_345_678}
    assert m["csrf_token"] == b.csrf

    again = Browser(stack).post(
        "/api/auth/register", {"username": username, "password": PASSWORD}, csrf=None
    )
    assert again.status_code == 409 and error(again)["param"] == "username"


def test_without_a_session_everything_is_401(stack: Stack) -> None:
    anon = httpx.Client(base_url=stack.url)
    for method, path in (
        ("GET", "/api/me"),
        ("GET", "/api/keys"),
        ("POST", "/api/keys"),
        ("DELETE", "/api/keys/1"),
        ("GET", "/api/webhook-secret"),
        ("POST", "/api/auth/logout"),
    ):
        r = anon.request(method, path, json={} if method == "POST" else None)
        assert r.status_code == 401, (method, path, r.text)
        assert error(r)["code"] == "not_authenticated"
    forged = anon.get("/api/me", cookies={"llmage_session": "not-a-session"})
    assert forged.status_code == 401


def test_wrong_password_and_unknown_user_look_the_same(stack: Stack) -> None:
    _, username = new_user(stack)
    b = Browser(stack)
    wrong = b.post("/api/auth/login", {"username": username, "password": "nope-nope"})
    unknown = b.post("/api/auth/login", {"username": "nobody-here", "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert error(wrong) == error(unknown)
    assert error(wrong)["code"] == "invalid_credentials"
    assert b.session_cookie is None


def test_unsafe_requests_need_the_sessions_csrf_token(stack: Stack) -> None:
    b, _, _ = logged_in(stack)
    other, _, _ = logged_in(stack)
    good = b.csrf
    assert good and other.csrf and good != other.csrf

    def refused(r: httpx.Response, param: str) -> None:
        assert r.status_code == 403, r.text
        err = error(r)
        assert err["code"] == "csrf_failed" and err["param"] == param, err

    refused(b.post("/api/keys", {"name": "x"}, csrf=None), "X-CSRF-Token")
    refused(b.post("/api/keys", {"name": "x"}, csrf="0" * 64), "X-CSRF-Token")
    # Another session's token, even when the cookie is forced to match (a planted cookie).
    b.http.cookies.set("llmage_csrf", other.csrf, domain="127.0.0.1")
    refused(b.post("/api/keys", {"name": "x"}, csrf=other.csrf), "X-CSRF-Token")
    b.http.cookies.set("llmage_csrf", good, domain="127.0.0.1")
    # The right token from another site's page.
    refused(b.post("/api/keys", {"name": "x"}, origin="https://evil.example"), "Origin")
    refused(b.post("/api/keys", {"name": "x"}, origin="null"), "Origin")
    refused(b.post("/api/keys", {"name": "x"}, headers={"Sec-Fetch-Site": "cross-site"}), "Origin")
    refused(b.delete("/api/keys/1", origin="http://127.0.0.1:1"), "Origin")
    refused(b.post("/api/auth/logout", csrf=None), "X-CSRF-Token")
    # Nothing was created by the refused requests.
    assert b.get("/api/keys").json() == {"data": []}

    ok = b.post("/api/keys", {"name": "x"}, headers={"Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 201, ok.text
    no_origin = b.post("/api/keys", {"name": "y"}, origin=None)  # e.g. curl with the token
    assert no_origin.status_code == 201, no_origin.text
    # The same host over https: a TLS-terminating proxy in front of this server.
    proxied = b.post("/api/keys", {"name": "z"}, origin=stack.url.replace("http:", "https:"))
    assert proxied.status_code == 201, proxied.text
    refused(b.post("/api/keys", {"name": "x"}, origin=stack.url + "1"), "Origin")  # other port
    # Safe methods need no token.
    assert b.get("/api/keys").status_code == 200


def test_login_from_another_site_is_refused(stack: Stack) -> None:
    _, username = new_user(stack)
    b = Browser(stack)
    r = b.post(
        "/api/auth/login",
        {"username": username, "password": PASSWORD},
        origin="https://evil.example",
    )
    assert r.status_code == 403 and error(r)["code"] == "csrf_failed"
    assert b.session_cookie is None


def test_logout_revokes_the_session_server_side(stack: Stack) -> None:
    b, _, _ = logged_in(stack)
    stolen = b.session_cookie
    r = b.post("/api/auth/logout")
    assert r.status_code == 200 and r.json()["ok"] is True
    assert b.session_cookie is None  # the browser dropped it
    replay = httpx.get(f"{stack.url}/api/me", cookies={"llmage_session": stolen or ""})
    assert replay.status_code == 401  # and a copy kept elsewhere is dead too


def test_password_change_logs_out_the_other_sessions(stack: Stack) -> None:
    uid, username = new_user(stack)
    laptop, phone = Browser(stack), Browser(stack)
    laptop.login(username)
    phone.login(username)
    wrong = laptop.post(
        "/api/auth/password", {"password": "not-it-at-all", "new_password": "x" * 9}
    )
    assert wrong.status_code == 401 and error(wrong)["param"] == "password"
    short = laptop.post("/api/auth/password", {"password": PASSWORD, "new_password": "short"})
    assert short.status_code == 400 and error(short)["param"] == "new_password"
    r = laptop.post("/api/auth/password", {"password": PASSWORD, "new_password": "brand-new-pw"})
    assert r.status_code == 200, r.text
    assert r.json()["sessions_ended"] == 1
    assert laptop.get("/api/me").status_code == 200  # the session that changed it stays
    assert phone.get("/api/me").status_code == 401
    fresh = Browser(stack)
    old = fresh.post("/api/auth/login", {"username": username, "password": PASSWORD})
    assert old.status_code == 401
    fresh.login(username, "brand-new-pw")
    assert fresh.get("/api/me").json()["id"] == uid


def test_disabled_user_sessions_stop_at_once(stack: Stack) -> None:
    b, uid, username = logged_in(stack)
    assert b.get("/api/me").status_code == 200
    stack.admin.call(stack.platform.accounts.update_user(uid, disabled=True))
    assert b.get("/api/me").status_code == 401
    r = Browser(stack).post("/api/auth/login", {"username": username, "password": PASSWORD})
    assert r.status_code == 403 and "disabled" in error(r)["message"]


def test_bad_bodies_name_the_field(stack: Stack) -> None:
    b = Browser(stack)
    cases = [
        ({"password": PASSWORD}, "username", "missing_required_parameter"),
        ({"username": "ab", "password": PASSWORD}, "username", "invalid_value"),
        ({"username": "has space", "password": PASSWORD}, "username", "invalid_value"),
        ({"username": "okname", "password": "short"}, "password", "invalid_value"),
        ({"username": "okname", "password": PASSWORD, "pasword": 1}, "pasword", None),
        ({"username": ["x"], "password": PASSWORD}, "username", None),
        ({"username": "okname", "password": PASSWORD, "phone": "12"}, "phone", "invalid_value"),
        ({"username": "okname", "password": PASSWORD, "phone": "13800138000"}, "sms_code", None),
    ]
    for body, param, code in cases:
        r = b.post("/api/auth/register", body)
        assert r.status_code == 400, (body, r.text)
        err = error(r)
        assert err["param"] == param, (body, err)
        assert param in err["message"] or err["code"] == "invalid_value", err
        if code:
            assert err["code"] == code, err
    r = b.post("/api/auth/sms-code", {"phone": "13800138000", "purpose": "signup"})
    assert r.status_code == 400 and error(r)["param"] == "purpose"
    r = b.http.post(
        "/api/auth/login", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and "error" in r.json()
    # Text that cannot be stored or hashed: refused as bad input, never a server error.
    for raw in (
        b'{"username": "ab\\u0000cd", "password": "password-123"}',
        b'{"username": "abcd", "password": "pass\\ud800word"}',
        b'{"username": "' + b"u" * 100 + b'", "password": "password-123"}',
    ):
        r = b.http.post(
            "/api/auth/login", content=raw, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400, (raw, r.text)
        assert error(r)["param"] in ("username", "password"), r.text
    r = b.get("/api/no-such-route")
    assert r.status_code == 404 and error(r)["code"] == "not_found"


def test_login_is_throttled_per_username(stack: Stack) -> None:
    _, username = new_user(stack)
    b = Browser(stack)
    limit = stack.app_platform.console_auth.rules.login_user[0].limit
    for _ in range(limit):
        r = b.post("/api/auth/login", {"username": username, "password": "wrong-password"})
        assert r.status_code == 401
    r = b.post("/api/auth/login", {"username": username, "password": PASSWORD})
    assert r.status_code == 429, r.text  # even the right password waits now
    assert int(r.headers["retry-after"]) > 0
    assert error(r)["code"] == "rate_limited" and error(r)["param"] == "username"
    assert b.session_cookie is None
