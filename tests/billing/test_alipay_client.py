"""The Alipay client against the fake gateway on loopback, and the settings that build it: every
way a reply can be unusable ends in a clear exception, never in a trusted answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from cryptography.fernet import Fernet

from llmage.billing import alipay
from llmage.billing.alipay import AlipayConfig
from llmage.billing.alipay_client import AlipayClient, AlipayRefused, AlipayUnavailable
from llmage.domain.clock import now_ms
from llmage.services.topups import TopupService, TopupUnavailable, alipay_config
from llmage.settings import Settings
from support.fake_alipay import FakeAlipay, new_key, private_pem, public_pem
from support.servers import free_socket


def config(fake: FakeAlipay, **changes: object) -> AlipayConfig:
    base = {
        "app_id": fake.app_id,
        "seller_id": fake.seller_id,
        "private_key": alipay.load_private_key(private_pem(fake.app_key)),
        "alipay_public_key": alipay.load_public_key(public_pem(fake.alipay_key)),
        "gateway": fake.url,
        "notify_url": "http://127.0.0.1:1/api/payments/alipay/notify",
        "return_url": "http://127.0.0.1:1/api/payments/alipay/return",
    }
    return AlipayConfig(**{**base, **changes})  # type: ignore[arg-type]


@pytest.fixture
async def fake() -> AsyncIterator[FakeAlipay]:
    f = FakeAlipay()
    await f.start()
    yield f
    await f.stop()


async def test_precreate_and_query_round_trip(fake: FakeAlipay) -> None:
    client = AlipayClient(config(fake))
    try:
        now = now_ms()
        qr = await client.precreate("LMc1", 1_230_000, "充值", now_ms=now, expire_ms=now + 900_000)
        assert qr.startswith("https://qr.alipay.com/")
        assert fake.trades["LMc1"].total_amount == "1.23"
        state = await client.query("LMc1", now_ms=now)
        assert state.status is None  # not scanned yet: ACQ.TRADE_NOT_EXIST
        fake.pay("LMc1")
        state = await client.query("LMc1", now_ms=now)
        assert (state.status, state.total_micros) == ("TRADE_SUCCESS", 1_230_000)
        assert state.trade_no == fake.trades["LMc1"].trade_no
    finally:
        await client.close()


async def test_our_bad_signature_is_a_refusal(fake: FakeAlipay) -> None:
    client = AlipayClient(config(fake, private_key=new_key()))
    try:
        with pytest.raises(AlipayRefused) as err:
            await client.precreate("LMc2", 1_000_000, "x", now_ms=now_ms(), expire_ms=None)
        assert err.value.sub_code == "isv.invalid-signature"
        # An unsigned "not found" is not believed: the order must not be closed on it.
        with pytest.raises(AlipayRefused):
            await client.query("LMc2", now_ms=now_ms())
    finally:
        await client.close()
    assert fake.calls == [] and len(fake.refused) == 2


async def test_replies_signed_by_another_key_are_not_trusted(fake: FakeAlipay) -> None:
    client = AlipayClient(config(fake, alipay_public_key=new_key().public_key()))
    try:
        with pytest.raises(AlipayUnavailable, match="does not verify"):
            await client.precreate("LMc3", 1_000_000, "x", now_ms=now_ms(), expire_ms=None)
        with pytest.raises(AlipayUnavailable, match="does not verify"):
            await client.query("LMc3", now_ms=now_ms())
    finally:
        await client.close()


async def test_outages_are_unavailable_not_answers(fake: FakeAlipay) -> None:
    client = AlipayClient(config(fake))
    try:
        fake.fail_with_status = 502
        with pytest.raises(AlipayUnavailable, match="HTTP 502"):
            await client.query("LMc4", now_ms=now_ms())
    finally:
        await client.close()
    sock = free_socket()  # a port that was just free: closed again, nothing listens there
    port = sock.getsockname()[1]
    sock.close()
    client = AlipayClient(config(fake, gateway=f"http://127.0.0.1:{port}/gateway.do"), timeout=5)
    try:
        with pytest.raises(AlipayUnavailable):
            await client.query("LMc4", now_ms=now_ms())
    finally:
        await client.close()


def test_settings_build_the_config_or_say_what_is_missing(tmp_path: object) -> None:
    fake = FakeAlipay()
    common = {"secret_key": Fernet.generate_key().decode(), "data_dir": tmp_path}
    assert alipay_config(Settings(**common), "http://x") is None  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="LLMAGE_ALIPAY_SELLER_ID"):
        alipay_config(Settings(**common, alipay_app_id="1"), "http://x")  # type: ignore[arg-type]
    good = {**common, **fake.settings}
    with pytest.raises(ValueError, match="LLMAGE_ALIPAY_PRIVATE_KEY"):
        alipay_config(Settings(**{**good, "alipay_private_key": "nope"}), "http://x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="LLMAGE_ALIPAY_PUBLIC_KEY"):
        alipay_config(Settings(**{**good, "alipay_public_key": "nope"}), "http://x")  # type: ignore[arg-type]
    cfg = alipay_config(Settings(**good), "https://pay.example.com/")  # type: ignore[arg-type]
    assert cfg is not None
    assert cfg.notify_url == "https://pay.example.com/api/payments/alipay/notify"
    assert cfg.return_url == "https://pay.example.com/api/payments/alipay/return"
    assert "PRIVATE" not in repr(Settings(**good))  # the key is a secret in settings


async def test_topup_without_alipay_is_a_clear_503() -> None:
    svc = TopupService(
        None,  # type: ignore[arg-type]
        None,
        subject="x",
        order_ttl_seconds=60,
        check_interval_seconds=60,
        min_amount="1",
        max_amount="10",
    )
    assert not svc.enabled
    with pytest.raises(TopupUnavailable) as err:
        await svc.create(1, 5_000_000, "alipay_qr")
    assert err.value.status == 503 and "not configured" in err.value.message


def test_a_subject_alipay_would_refuse_is_a_start_up_error() -> None:
    for subject in ("", "x" * 129, "充值 a/b", "a=b", "a&b"):
        with pytest.raises(ValueError, match="LLMAGE_ALIPAY_SUBJECT"):
            TopupService(
                None,  # type: ignore[arg-type]
                None,
                subject=subject,
                order_ttl_seconds=60,
                check_interval_seconds=60,
                min_amount="1",
                max_amount="10",
            )
