"""The Alipay protocol without a network: signing strings, RSA2 against OpenSSL itself, notify
verification, reply verification over the raw text, keys in every form Alipay hands out."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization

from llmage.billing import alipay
from llmage.billing.alipay import AlipayConfig, AlipayProtocolError
from support.fake_alipay import FakeAlipay, private_pem, public_pem


@pytest.fixture(scope="module")
def fake() -> FakeAlipay:
    return FakeAlipay()  # keys only: nothing is started


@pytest.fixture(scope="module")
def cfg(fake: FakeAlipay) -> AlipayConfig:
    return AlipayConfig(
        app_id=fake.app_id,
        seller_id=fake.seller_id,
        private_key=alipay.load_private_key(private_pem(fake.app_key)),
        alipay_public_key=alipay.load_public_key(public_pem(fake.alipay_key)),
        gateway="https://gateway.example/gateway.do",
        notify_url="https://llmage.example/api/payments/alipay/notify",
        return_url="https://llmage.example/api/payments/alipay/return",
    )


def test_request_content_drops_sign_and_empties_keeps_sign_type_sorted_raw() -> None:
    params = {
        "sign": "xxx",
        "timestamp": "2025-01-01 12:00:00",
        "app_id": "1",
        "empty": "",
        "sign_type": "RSA2",
        "biz_content": '{"subject":"充值 & more=1"}',
        "Zeta": "upper sorts first",
    }
    assert alipay.sign_content(params) == (
        'Zeta=upper sorts first&app_id=1&biz_content={"subject":"充值 & more=1"}'
        "&sign_type=RSA2&timestamp=2025-01-01 12:00:00"
    )


def test_notify_content_drops_sign_type_too_and_keeps_empty_values() -> None:
    params = {"b": "2", "sign": "s", "sign_type": "RSA2", "a": "", "c": "x y"}
    assert alipay.notify_content(params) == "a=&b=2&c=x y"


def test_rsa2_matches_openssl(tmp_path: Path, fake: FakeAlipay) -> None:
    """PKCS#1 v1.5 is deterministic: our signature must equal OpenSSL's byte for byte."""
    key_file = tmp_path / "app.pem"
    key_file.write_text(private_pem(fake.app_key))
    content = 'app_id=1&biz_content={"total_amount":"9.90","subject":"充值"}&method=x'
    data = tmp_path / "content.txt"
    data.write_bytes(content.encode())
    out = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(key_file), str(data)],
        check=True,
        capture_output=True,
    ).stdout
    key = alipay.load_private_key(str(key_file))
    assert alipay.rsa2_sign(key, content) == base64.b64encode(out).decode()


def test_verify_refuses_tampering_and_garbage(fake: FakeAlipay) -> None:
    key = alipay.load_private_key(private_pem(fake.app_key))
    pub = key.public_key()
    sig = alipay.rsa2_sign(key, "a=1&b=2")
    assert alipay.rsa2_verify(pub, "a=1&b=2", sig)
    assert not alipay.rsa2_verify(pub, "a=1&b=3", sig)
    assert not alipay.rsa2_verify(pub, "a=1&b=2", "not base64!!")
    assert not alipay.rsa2_verify(pub, "a=1&b=2", base64.b64encode(b"x" * 256).decode())
    other = alipay.load_public_key(public_pem(fake.alipay_key))
    assert not alipay.rsa2_verify(other, "a=1&b=2", sig)


def test_notify_from_the_gateway_verifies_and_any_change_breaks_it(
    fake: FakeAlipay, cfg: AlipayConfig
) -> None:
    from support.fake_alipay import Trade

    fake.trades["LM1"] = Trade("LM1", "10.00", "账户充值", "", "alipay.trade.precreate")
    fake.pay("LM1")
    params = fake.notify_params("LM1")
    assert alipay.verify_notify(cfg.alipay_public_key, params)
    # URL-encoding round trip, as the form arrives: the values are compared decoded.
    assert "fund_bill_list" in params and '"' in params["fund_bill_list"]
    for field, value in [("total_amount", "10.01"), ("trade_status", "TRADE_FINISHED")]:
        assert not alipay.verify_notify(cfg.alipay_public_key, {**params, field: value})
    assert not alipay.verify_notify(cfg.alipay_public_key, {**params, "extra": "1"})
    assert not alipay.verify_notify(cfg.alipay_public_key, {**params, "sign_type": "RSA"})
    no_sign = {k: v for k, v in params.items() if k != "sign"}
    assert not alipay.verify_notify(cfg.alipay_public_key, no_sign)
    # Signed by someone else's key (the app's own, say): refused.
    forged = fake.notify_params("LM1", sign_key=fake.app_key)
    assert not alipay.verify_notify(cfg.alipay_public_key, forged)


def test_amounts_are_exact_and_strict() -> None:
    assert alipay.yuan(10_000_000) == "10.00"
    assert alipay.yuan(10_000) == "0.01"
    assert alipay.yuan(123_456_780_000) == "123456.78"
    with pytest.raises(ValueError):
        alipay.yuan(5_000)
    assert alipay.parse_yuan("10.00") == 10_000_000
    assert alipay.parse_yuan("10") == 10_000_000
    assert alipay.parse_yuan("0.5") == 500_000
    for bad in ("10.001", "-1.00", "1e3", "NaN", "", " 10.00", "010.00", "abc"):
        assert alipay.parse_yuan(bad) is None, bad


def test_times_are_beijing() -> None:
    assert alipay.beijing_time(0) == "1970-01-01 08:00:00"
    assert alipay.beijing_time(1_700_000_000_000) == "2023-11-15 06:13:20"


def test_signed_request_and_page_pay_url_verify_at_the_gateway(
    fake: FakeAlipay, cfg: AlipayConfig
) -> None:
    now = 1_700_000_000_000
    biz = alipay.trade_biz("LM2", 12_340_000, "账户充值", now + 1_800_000)
    params = alipay.signed_request(cfg, "alipay.trade.precreate", biz, now_ms=now)
    assert fake._verify_request(params)
    assert params["timestamp"] == "2023-11-15 06:13:20"
    assert json.loads(params["biz_content"]) == {
        "out_trade_no": "LM2",
        "total_amount": "12.34",
        "subject": "账户充值",
        "time_expire": "2023-11-15 06:43:20",
    }
    assert "return_url" not in params
    assert not fake._verify_request({**params, "biz_content": params["biz_content"] + " "})

    url = alipay.page_pay_url(cfg, "LM3", 1_000_000, "账户充值", now_ms=now, expire_ms=None)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == cfg.gateway
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    assert fake._verify_request(query)
    assert query["method"] == "alipay.trade.page.pay"
    assert query["return_url"] == cfg.return_url
    assert query["notify_url"] == cfg.notify_url
    assert json.loads(query["biz_content"])["product_code"] == "FAST_INSTANT_TRADE_PAY"


def _reply_text(fake: FakeAlipay, method: str, body: dict[str, object]) -> str:
    return fake._reply(method, body).text or ""


def test_reply_is_verified_over_its_raw_text(fake: FakeAlipay, cfg: AlipayConfig) -> None:
    body = {"code": "10000", "msg": "Success", "out_trade_no": "LM4", "note": '交易 "ok"'}
    raw = _reply_text(fake, "alipay.trade.query", body)
    assert '": ' in raw  # the fake writes non-compact JSON: a re-serialisation would differ
    reply = alipay.verified_reply(cfg.alipay_public_key, "alipay.trade.query", raw)
    assert reply.signed and reply.ok and reply.body == body
    # Same JSON value, different text (escaped unicode): the signature no longer matches.
    doc = json.loads(raw)
    inner = json.dumps(doc["alipay_trade_query_response"])  # ensure_ascii: \\u escapes
    reserialised = json.dumps(
        {"alipay_trade_query_response": json.loads(inner), "sign": doc["sign"]}
    )
    with pytest.raises(AlipayProtocolError):
        alipay.verified_reply(cfg.alipay_public_key, "alipay.trade.query", reserialised)


def test_reply_member_found_by_structure_not_text_search(
    fake: FakeAlipay, cfg: AlipayConfig
) -> None:
    body = {"code": "10000", "msg": "Success", "out_trade_no": "LM5"}
    inner = json.dumps(body, ensure_ascii=False)
    sign = alipay.rsa2_sign(fake.alipay_key, inner)
    # The sign first, a decoy string mentioning the member name, odd whitespace.
    raw = (
        f'{{ "sign" : "{sign}", "decoy": "\\"alipay_trade_query_response\\": {{}}",\n'
        f'  "alipay_trade_query_response"  :  {inner} }}'
    )
    reply = alipay.verified_reply(cfg.alipay_public_key, "alipay.trade.query", raw)
    assert reply.body == body


def test_reply_refusals(fake: FakeAlipay, cfg: AlipayConfig) -> None:
    key = cfg.alipay_public_key
    ok = {"code": "10000", "msg": "Success"}
    with pytest.raises(AlipayProtocolError, match="not signed"):
        alipay.verified_reply(
            key, "alipay.trade.query", json.dumps({"alipay_trade_query_response": ok})
        )
    tampered = _reply_text(fake, "alipay.trade.query", ok).replace("Success", "Succe55")
    with pytest.raises(AlipayProtocolError, match="does not verify"):
        alipay.verified_reply(key, "alipay.trade.query", tampered)
    with pytest.raises(AlipayProtocolError, match="no alipay_trade_query_response"):
        alipay.verified_reply(
            key, "alipay.trade.query", _reply_text(fake, "alipay.trade.precreate", ok)
        )
    for junk in ("", "[]", "not json", '{"a": 1', '{"alipay_trade_query_response": []}'):
        with pytest.raises(AlipayProtocolError):
            alipay.verified_reply(key, "alipay.trade.query", junk)
    # A gateway-level error may come unsigned: returned, but marked so nobody acts on it.
    err = {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature"}
    raw = json.dumps({"error_response": err})
    reply = alipay.verified_reply(key, "alipay.trade.query", raw)
    assert not reply.signed and not reply.ok and reply.body == err


def test_keys_load_from_pem_bare_base64_and_files(tmp_path: Path, fake: FakeAlipay) -> None:
    k = fake.app_key
    pkcs1 = k.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    der = k.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    bare = base64.b64encode(der).decode()  # what Alipay's key tool prints: one line, no header
    path = tmp_path / "app_private.pem"
    path.write_text(private_pem(k))
    want = k.private_numbers()
    for form in (private_pem(k), pkcs1, bare, str(path), "  " + bare + "\n"):
        assert alipay.load_private_key(form).private_numbers() == want

    pub_der = k.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pub_path = tmp_path / "alipay_public.pem"
    pub_path.write_text(public_pem(k))
    pub_want = k.public_key().public_numbers()
    for form in (public_pem(k), base64.b64encode(pub_der).decode(), str(pub_path)):
        assert alipay.load_public_key(form).public_numbers() == pub_want

    for junk in ("", "not a key", base64.b64encode(b"junk").decode(), str(tmp_path / "none.pem")):
        with pytest.raises(ValueError):
            alipay.load_private_key(junk)
        with pytest.raises(ValueError):
            alipay.load_public_key(junk)
