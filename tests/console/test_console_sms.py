"""Phone sign-up, SMS login and reset through the real app (log SMS sender) on both backends."""

from __future__ import annotations

import secrets

import pytest
from consolehelp import PASSWORD, Browser, error, last_code, new_user

from conftest import Stack


@pytest.fixture(autouse=True)
def fresh_throttles(stack: Stack) -> None:
    stack.app_platform.console_auth.throttle.clear()


def a_phone() -> str:
    return "139" + "".join(secrets.choice("0123456789") for _ in range(8))


def test_phone_sign_up_then_sms_login_then_reset(stack: Stack) -> None:
    phone = a_phone()
    b = Browser(stack)
    r = b.post(
        "/api/auth/sms-code", {"phone": f"+86 {phone[:3]}-{phone[3:]}", "purpose": "register"}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"sent": True, "expires_in": 300, "resend_after": 60}
    code = last_code(stack, phone)  # normalised: +86 and separators dropped
    assert len(code) == 6 and code.isdigit()
    username = "ph" + secrets.token_hex(4)
    wrong = b.post(
        "/api/auth/register",
        {"username": username, "password": PASSWORD, "phone": phone, "sms_code": "000000"},
    )
    if code != "000000":
        assert wrong.status_code == 401 and error(wrong)["param"] == "sms_code"
    r = b.post(
        "/api/auth/register",
        {"username": username, "password": PASSWORD, "phone": phone, "sms_code": code},
    )
    assert r.status_code == 201, r.text
    assert b.get("/api/me").json()["phone"] == f"{phone[:3]}****{phone[-4:]}"
    # The code is spent; and the phone is now taken.
    reuse = Browser(stack).post(
        "/api/auth/register",
        {"username": username + "x", "password": PASSWORD, "phone": phone, "sms_code": code},
    )
    assert reuse.status_code == 409 and error(reuse)["param"] == "phone"
    stack.app_platform.console_auth.throttle.clear()
    taken = Browser(stack).post("/api/auth/sms-code", {"phone": phone, "purpose": "register"})
    assert taken.status_code == 409

    # SMS login on a fresh browser.
    stack.app_platform.console_auth.throttle.clear()
    other = Browser(stack)
    assert other.post("/api/auth/sms-code", {"phone": phone, "purpose": "login"}).status_code == 200
    login_code = last_code(stack, phone)
    r = other.post("/api/auth/sms-login", {"phone": phone, "code": login_code})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["username"] == username
    assert other.get("/api/me").status_code == 200
    replay = Browser(stack).post("/api/auth/sms-login", {"phone": phone, "code": login_code})
    assert replay.status_code == 401  # one code, one login

    # Reset by SMS: new password, every session ended.
    stack.app_platform.console_auth.throttle.clear()
    assert other.post("/api/auth/sms-code", {"phone": phone, "purpose": "reset"}).status_code == 200
    reset_code = last_code(stack, phone)
    login_as_reset = Browser(stack).post(
        "/api/auth/sms-login", {"phone": phone, "code": reset_code}
    )
    assert login_as_reset.status_code == 401  # a reset code is not a login code
    r = Browser(stack).post(
        "/api/auth/reset", {"phone": phone, "code": reset_code, "new_password": "reset-pw-123"}
    )
    assert r.status_code == 200 and r.json()["sessions_ended"] == 2, r.text
    assert b.get("/api/me").status_code == 401 and other.get("/api/me").status_code == 401
    Browser(stack).login(username, "reset-pw-123")


def test_codes_for_unknown_phones_are_not_sent_and_answer_the_same(stack: Stack) -> None:
    phone = a_phone()
    before = len(stack.app_platform.sms.sent)  # type: ignore[attr-defined]
    r = Browser(stack).post("/api/auth/sms-code", {"phone": phone, "purpose": "login"})
    assert r.status_code == 200 and r.json()["sent"] is True
    assert len(stack.app_platform.sms.sent) == before  # type: ignore[attr-defined]
    r = Browser(stack).post("/api/auth/sms-login", {"phone": phone, "code": "123456"})
    assert r.status_code == 401


def test_resend_is_throttled_and_guessing_burns_the_code(stack: Stack) -> None:
    phone = a_phone()
    new_user(stack, phone=phone)
    b = Browser(stack)
    assert b.post("/api/auth/sms-code", {"phone": phone, "purpose": "login"}).status_code == 200
    code = last_code(stack, phone)
    again = b.post("/api/auth/sms-code", {"phone": phone, "purpose": "login"})
    assert again.status_code == 429 and error(again)["param"] == "phone"
    assert 0 < int(again.headers["retry-after"]) <= 60
    wrong = "111111" if code != "111111" else "222222"
    for _ in range(5):
        r = b.post("/api/auth/sms-login", {"phone": phone, "code": wrong})
        assert r.status_code == 401 and error(r)["param"] == "code"
    burnt = b.post("/api/auth/sms-login", {"phone": phone, "code": code})
    assert burnt.status_code == 401  # five wrong guesses killed the real code
    assert b.session_cookie is None


def test_sms_routes_refuse_other_origins(stack: Stack) -> None:
    r = Browser(stack).post(
        "/api/auth/sms-code",
        {"phone": a_phone(), "purpose": "login"},
        origin="https://evil.example",
    )
    assert r.status_code == 403 and error(r)["code"] == "csrf_failed"
