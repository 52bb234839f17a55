"""Aliyun SMS V3 signing and the sender, against the fake Aliyun endpoint on loopback."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest

from llmage.settings import Settings
from llmage.sms import SmsFailed, make_sms_sender
from llmage.sms.aliyun import AliyunSmsSender, canonical_query, sign
from support.fake_aliyun_sms import FakeAliyunSms

PARAMS = {
    "PhoneNumbers": "13800138000",
    "SignName": "llmage",
    "TemplateCode": "SMS_000001",
    "TemplateParam": '{"code":"123456"}',
}


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeAliyunSms]:
    f = FakeAliyunSms()
    await f.start()
    try:
        yield f
    finally:
        await f.stop()


def sender(fake: FakeAliyunSms, **overrides: str) -> AliyunSmsSender:
    options = {
        "endpoint": fake.url,
        "access_key_id": fake.access_key_id,
        "access_key_secret": fake.access_key_secret,
        "sign_name": fake.sign_name,
        "template_code": fake.template_code,
        **overrides,
    }
    return AliyunSmsSender(**options)


async def raw_send(
    fake: FakeAliyunSms,
    *,
    params: dict[str, str] | None = None,
    secret: str | None = None,
    now: dt.datetime | None = None,
    nonce: str | None = None,
    body: bytes = b"",
    signed_body: bytes | None = None,
    action: str = "SendSms",
    version: str = "2017-05-25",
    query_override: str | None = None,
) -> httpx.Response:
    query, headers = sign(
        access_key_id=fake.access_key_id,
        access_key_secret=secret or fake.access_key_secret,
        host=fake.url.removeprefix("http://"),
        params=params or PARAMS,
        body=body if signed_body is None else signed_body,
        action=action,
        version=version,
        now=now,
        nonce=nonce,
    )
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{fake.url}/?{query_override or query}", headers=headers, content=body
        )


def test_canonical_query_is_rfc3986_sorted() -> None:
    q = canonical_query({"b": "a b*c~d", "A": "中", "a": "x+y/z"})
    assert q == "A=%E4%B8%AD&a=x%2By%2Fz&b=a%20b%2Ac~d"


async def test_sender_delivers_a_code(fake: FakeAliyunSms) -> None:
    s = sender(fake)
    try:
        await s.send_code("13800138000", "654321")
        await s.send_code("+447700900123", "111222")  # international: country code, no '+'
    finally:
        await s.close()
    assert fake.codes_to("13800138000")[-1] == "654321"
    assert fake.codes_to("447700900123") == ["111222"]
    assert fake.sent[-1].sign_name == "llmage" and fake.sent[-1].template == "SMS_000001"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"access_key_secret": "wrong-secret"}, "SignatureDoesNotMatch"),
        ({"access_key_id": "LTAI5tSomebodyElse"}, "InvalidAccessKeyId.NotFound"),
        ({"sign_name": "other"}, "isv.SMS_SIGNATURE_ILLEGAL"),
        ({"template_code": "SMS_999"}, "isv.SMS_TEMPLATE_ILLEGAL"),
    ],
)
async def test_sender_reports_provider_refusals(
    fake: FakeAliyunSms, overrides: dict[str, str], code: str
) -> None:
    s = sender(fake, **overrides)
    before = len(fake.sent)
    try:
        with pytest.raises(SmsFailed) as info:
            await s.send_code("13800138000", "000000")
    finally:
        await s.close()
    assert info.value.code == code
    assert "fake-access-key-secret" not in str(info.value) and "wrong-secret" not in str(info.value)
    assert len(fake.sent) == before


async def test_fake_checks_every_signing_rule(fake: FakeAliyunSms) -> None:
    now = dt.datetime.now(dt.UTC)
    ok = await raw_send(fake, nonce="nonce-once")
    assert ok.status_code == 200 and ok.json()["Code"] == "OK"
    replay = await raw_send(fake, nonce="nonce-once")
    assert replay.json()["Code"] == "SignatureNonceUsed"
    stale = await raw_send(fake, now=now - dt.timedelta(minutes=16))
    assert stale.json()["Code"] == "InvalidTimeStamp.Expired"
    early = await raw_send(fake, now=now + dt.timedelta(minutes=16))
    assert early.json()["Code"] == "InvalidTimeStamp.Expired"
    assert (await raw_send(fake, now=now - dt.timedelta(minutes=14))).json()["Code"] == "OK"
    # A body other than the one hashed and signed.
    sneaked = await raw_send(fake, body=b"PhoneNumbers=13900000000", signed_body=b"")
    assert sneaked.json()["Code"] == "InvalidContentSha256"
    # The query changed after signing (another phone number).
    tampered = canonical_query({**PARAMS, "PhoneNumbers": "13900000000"})
    assert (await raw_send(fake, query_override=tampered)).json()["Code"] == "SignatureDoesNotMatch"
    assert (await raw_send(fake, secret="guess")).json()["Code"] == "SignatureDoesNotMatch"
    assert (await raw_send(fake, action="SendBatchSms")).json()["Code"] == "InvalidAction.NotFound"
    assert (await raw_send(fake, version="2099-01-01")).json()["Code"] == "InvalidVersion"
    missing = {k: v for k, v in PARAMS.items() if k != "TemplateParam"}
    assert (await raw_send(fake, params=missing)).json()["Code"] == "MissingTemplateParam"
    bad_phone = {**PARAMS, "PhoneNumbers": "12"}
    assert (await raw_send(fake, params=bad_phone)).json()["Code"] == "isv.MOBILE_NUMBER_ILLEGAL"


async def test_unreachable_endpoint_is_an_sms_failure() -> None:
    s = AliyunSmsSender(
        endpoint="http://127.0.0.1:9",
        access_key_id="ak",
        access_key_secret="sk",
        sign_name="s",
        template_code="t",
        timeout=5,
    )
    try:
        with pytest.raises(SmsFailed) as info:
            await s.send_code("13800138000", "123456")
    finally:
        await s.close()
    assert info.value.code == "unreachable"


async def test_backend_choice_and_missing_configuration() -> None:
    assert make_sms_sender(Settings(sms_backend="log")).name == "log"
    with pytest.raises(ValueError, match="LLMAGE_SMS_ALIYUN_ACCESS_KEY_SECRET"):
        make_sms_sender(Settings(sms_backend="aliyun", sms_aliyun_access_key_id="ak"))
    with pytest.raises(ValueError, match="'log' or 'aliyun'"):
        make_sms_sender(Settings(sms_backend="carrier-pigeon"))
    s = make_sms_sender(
        Settings(
            sms_backend="aliyun",
            sms_aliyun_access_key_id="ak",
            sms_aliyun_access_key_secret="sk",  # type: ignore[arg-type]
            sms_aliyun_sign_name="s",
            sms_aliyun_template_code="t",
        )
    )
    assert s.name == "aliyun"
    await s.close()
    shown = Settings(sms_aliyun_access_key_secret="super-secret-value")  # type: ignore[arg-type]
    assert "super-secret-value" not in repr(shown)
