"""The console with LLMAGE_SMS_BACKEND=aliyun: codes travel through the fake Aliyun endpoint
(which checks every signing rule), and provider refusals become clear console errors."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from consolehelp import Browser, error, new_user

from conftest import Stack, running_stack
from support.backends import BACKENDS
from support.fake_aliyun_sms import FakeAliyunSms
from support.servers import LoopThread


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAliyunSms]:
    loop = LoopThread("fake-aliyun")
    f = FakeAliyunSms()
    loop.call(f.start())
    try:
        yield f
    finally:
        loop.call(f.stop())
        loop.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    fake: FakeAliyunSms,
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp(f"console-aliyun-{request.param}")
    with running_stack(
        request.param,
        tmp,
        sms_backend="aliyun",
        sms_aliyun_endpoint=fake.url,
        sms_aliyun_access_key_id=fake.access_key_id,
        sms_aliyun_access_key_secret=fake.access_key_secret,
        sms_aliyun_sign_name=fake.sign_name,
        sms_aliyun_template_code=fake.template_code,
    ) as s:
        yield s


@pytest.fixture(autouse=True)
def fresh(stack: Stack, fake: FakeAliyunSms) -> None:
    stack.app_platform.console_auth.throttle.clear()
    fake.fail_with = None


def a_phone() -> str:
    return "135" + "".join(secrets.choice("0123456789") for _ in range(8))


def test_sms_login_through_aliyun(stack: Stack, fake: FakeAliyunSms) -> None:
    phone = a_phone()
    uid, _ = new_user(stack, phone=phone)
    b = Browser(stack)
    r = b.post("/api/auth/sms-code", {"phone": phone, "purpose": "login"})
    assert r.status_code == 200, r.text
    (code,) = fake.codes_to(phone)
    r = b.post("/api/auth/sms-login", {"phone": phone, "code": code})
    assert r.status_code == 200, r.text
    assert b.get("/api/me").json()["id"] == uid


@pytest.mark.parametrize(
    ("provider_code", "status", "param"),
    [
        ("isv.BUSINESS_LIMIT_CONTROL", 429, "phone"),
        ("isv.MOBILE_NUMBER_ILLEGAL", 400, "phone"),
        ("isv.AMOUNT_NOT_ENOUGH", 503, None),
    ],
)
def test_provider_refusals_are_clear_errors(
    stack: Stack, fake: FakeAliyunSms, provider_code: str, status: int, param: str | None
) -> None:
    phone = a_phone()
    new_user(stack, phone=phone)
    fake.fail_with = provider_code
    r = Browser(stack).post("/api/auth/sms-code", {"phone": phone, "purpose": "login"})
    assert r.status_code == status, r.text
    err = error(r)
    assert err["param"] == param
    assert fake.access_key_secret not in r.text
    assert fake.errors[-1] == provider_code
