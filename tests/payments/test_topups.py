"""Alipay top-up end to end against the fake gateway, on SQLite and PostgreSQL: orders through the
console API, signed requests the gateway verifies, notifies it signs, the return page, and the
pending-order job. Every refused notify leaves the balance and the order untouched."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from payhelp import PayEnv, User, pay_env

from llmage.services.topups import CLOSE_GRACE_MS
from support.backends import BACKENDS

NOTIFY = "/api/payments/alipay/notify"


@pytest.fixture(scope="module", params=BACKENDS)
def env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PayEnv]:
    yield from pay_env(request.param, tmp_path_factory)


async def new_order(
    env: PayEnv, user: User, amount: str = "10.00", method: str = "alipay_qr"
) -> dict[str, Any]:
    async with env.client(user) as c:
        r = await c.post("/api/topups", json={"amount": amount, "method": method})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def visit_cashier(env: PayEnv, pay_url: str) -> httpx.Response:
    """The browser following pay_url: the fake gateway verifies its signature."""
    async with httpx.AsyncClient(timeout=30) as c:
        return await c.get(pay_url)


def order_row(env: PayEnv, no: str) -> dict[str, Any]:
    cols = ("status", "checks", "next_check_at", "expires_at", "trade_no")
    rows = env.sql(f"SELECT {', '.join(cols)} FROM topup_orders WHERE out_trade_no = :o", o=no)
    return dict(zip(cols, rows[0], strict=True))


async def test_qr_topup_end_to_end(env: PayEnv) -> None:
    u = env.user()
    o = await new_order(env, u, "12.34", "alipay_qr")
    no = o["out_trade_no"]
    assert o["status"] == "pending" and o["method"] == "alipay_qr"
    assert o["amount"] == {"amount": "12.340000", "micros": 12_340_000}
    assert o["qr_code"].startswith("https://qr.alipay.com/") and o["pay_url"] is None
    assert o["qr_svg"].startswith("<svg")
    # precreate reached the gateway with a signature it verified, naming our notify URL
    call = [c for c in env.alipay.calls if c["method"] == "alipay.trade.precreate"][-1]
    assert call["notify_url"] == env.url + NOTIFY
    biz = json.loads(call["biz_content"])
    assert (biz["out_trade_no"], biz["total_amount"]) == (no, "12.34")
    assert biz["timeout_express"] == "30m"  # LLMAGE_ALIPAY_ORDER_TTL_SECONDS
    async with env.client(u) as c:
        svg = await c.get(f"/api/topups/{no}/qr.svg")
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        assert "<svg" in svg.text

        env.alipay.pay(no)
        assert await env.alipay.notify(no) == (200, "success")
        assert env.balance(u.user_id) == (12_340_000, 0)

        got = (await c.get(f"/api/topups/{no}")).json()
        assert got["status"] == "paid" and got["paid_at"] and got["qr_code"] is None
        assert got["trade_no"] == env.alipay.trades[no].trade_no
        listed = (await c.get("/api/topups")).json()
        assert [i["out_trade_no"] for i in listed["items"]] == [no]
    assert env.entries(u.user_id, "topup") == [
        (12_340_000, f"topup:{no}", f"alipay_qr {env.alipay.trades[no].trade_no}", None)
    ]
    assert env.reconcile() == []


async def test_page_pay_url_is_signed_and_accepted_by_the_cashier(env: PayEnv) -> None:
    u = env.user()
    o = await new_order(env, u, "99.90", "alipay_page")
    no = o["out_trade_no"]
    assert o["pay_url"].startswith(env.alipay.url + "?") and o["qr_code"] is None
    page = await visit_cashier(env, o["pay_url"])
    assert page.status_code == 200 and no in page.text
    call = env.alipay.calls[-1]
    assert call["method"] == "alipay.trade.page.pay"
    assert call["return_url"] == env.url + "/api/payments/alipay/return"
    biz = json.loads(call["biz_content"])
    assert biz["product_code"] == "FAST_INSTANT_TRADE_PAY" and biz["total_amount"] == "99.90"
    assert len(biz["time_expire"]) == len("2025-01-01 12:00:00")
    # Reading the pending order again gives a freshly signed URL the cashier accepts too.
    async with env.client(u) as c:
        again = (await c.get(f"/api/topups/{no}")).json()
    assert (await visit_cashier(env, again["pay_url"])).status_code == 200
    env.alipay.pay(no)
    assert await env.alipay.notify(no) == (200, "success")
    assert env.balance(u.user_id) == (99_900_000, 0)
    assert env.reconcile() == []


async def test_the_same_notify_20_times_at_once_credits_once(env: PayEnv) -> None:
    u = env.user()
    no = (await new_order(env, u, "50.00"))["out_trade_no"]
    env.alipay.pay(no)
    params = env.alipay.notify_params(no)
    answers = await asyncio.gather(*(env.alipay.notify(no, params) for _ in range(20)))
    assert answers == [(200, "success")] * 20
    assert env.balance(u.user_id) == (50_000_000, 0)
    # TRADE_FINISHED follows TRADE_SUCCESS later: acknowledged, not credited again.
    env.alipay.pay(no, "TRADE_FINISHED")
    assert await env.alipay.notify(no) == (200, "success")
    assert len(env.entries(u.user_id, "topup")) == 1
    assert env.balance(u.user_id) == (50_000_000, 0)
    assert env.order_status(no) == "paid"
    assert env.reconcile() == []


def _resigned(**overrides: str) -> Callable[[PayEnv, str], dict[str, str]]:
    """A notify validly signed by Alipay's key, with these fields changed."""
    return lambda env, no: env.alipay.notify_params(no, **overrides)


def _tampered_after_signing(env: PayEnv, no: str) -> dict[str, str]:
    return {**env.alipay.notify_params(no), "total_amount": "99.00"}


def _signed_by_another_key(env: PayEnv, no: str) -> dict[str, str]:
    return env.alipay.notify_params(no, sign_key=env.alipay.app_key)


def _unsigned(env: PayEnv, no: str) -> dict[str, str]:
    return {k: v for k, v in env.alipay.notify_params(no).items() if k != "sign"}


BAD_NOTIFIES: dict[str, Callable[[PayEnv, str], dict[str, str]]] = {
    "amount tampered after signing": _tampered_after_signing,
    "amount not the order's (signed)": _resigned(total_amount="10.01"),
    "wrong app_id": _resigned(app_id="2021000000009999"),
    "wrong seller_id": _resigned(seller_id="2088000000009999"),
    "unknown order": _resigned(out_trade_no="LM20250101120000ffffffffffffff"),
    "WAIT_BUYER_PAY": _resigned(trade_status="WAIT_BUYER_PAY"),
    "bad signature": _signed_by_another_key,
    "no signature": _unsigned,
}


@pytest.mark.parametrize("case", list(BAD_NOTIFIES))
async def test_a_refused_notify_credits_nothing(env: PayEnv, case: str) -> None:
    u = env.user()
    no = (await new_order(env, u, "10.00"))["out_trade_no"]
    env.alipay.pay(no)
    status, body = await env.alipay.notify(no, BAD_NOTIFIES[case](env, no))
    assert body != "success" and status >= 400, (status, body)
    assert env.balance(u.user_id) == (0, 0)
    assert env.order_status(no) == "pending"
    assert env.entries(u.user_id, "topup") == []
    assert env.reconcile() == []
    # The genuine notify still credits: the refused one changed nothing.
    assert await env.alipay.notify(no) == (200, "success")
    assert env.balance(u.user_id) == (10_000_000, 0)


async def test_notify_that_is_not_a_form_is_refused(env: PayEnv) -> None:
    async with httpx.AsyncClient(base_url=env.url, timeout=30) as c:
        for body in (b"\xff\xfe", b"a=1&a=2", b"", b"not a form", b"a=" + b"x" * 70_000):
            r = await c.post(NOTIFY, content=body)
            assert r.status_code == 400 and r.text == "failure"


async def test_topup_refuses_bad_input_and_strangers(env: PayEnv) -> None:
    u, other = env.user(), env.user()
    async with env.client(u) as c:
        for amount in ("0.001", "abc", "-5", "0", "0.00", "50000.01", True, None, [1]):
            r = await c.post("/api/topups", json={"amount": amount, "method": "alipay_qr"})
            assert r.status_code == 400, (amount, r.text)
            assert r.json()["error"]["param"] == "amount", r.json()
        r = await c.post("/api/topups", json={"amount": "10", "method": "wechat"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "method"
        assert "alipay_page" in r.json()["error"]["message"]
        mine = (await c.post("/api/topups", json={"amount": 10.5, "method": "alipay_qr"})).json()
        assert mine["amount"]["micros"] == 10_500_000
    async with env.client(other) as c:
        for path in (
            f"/api/topups/{mine['out_trade_no']}",
            f"/api/topups/{mine['out_trade_no']}/qr.svg",
        ):
            assert (await c.get(path)).status_code == 404
        assert (await c.get("/api/topups")).json()["items"] == []
    async with env.client() as c:  # no session
        r = await c.post("/api/topups", json={"amount": "10", "method": "alipay_qr"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"
    async with env.client(u, csrf=False) as c:
        r = await c.post("/api/topups", json={"amount": "10", "method": "alipay_qr"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"


async def test_return_page_checks_the_order_then_goes_to_finance(env: PayEnv) -> None:
    u = env.user()
    o = await new_order(env, u, "20.00", "alipay_page")
    no = o["out_trade_no"]
    await visit_cashier(env, o["pay_url"])
    env.alipay.pay(no)  # paid, but the notify has not arrived
    async with httpx.AsyncClient(base_url=env.url, timeout=30) as c:
        forged = env.alipay.return_params(no, sign_key=env.alipay.app_key)
        r = await c.get("/api/payments/alipay/return?" + urlencode(forged))
        assert (r.status_code, r.headers["location"]) == (303, "/finance")
        assert env.balance(u.user_id) == (0, 0)

        r = await c.get("/api/payments/alipay/return?" + urlencode(env.alipay.return_params(no)))
        assert (r.status_code, r.headers["location"]) == (303, f"/finance?order={no}")
    assert env.balance(u.user_id) == (20_000_000, 0)  # credited from the signed trade query
    assert env.order_status(no) == "paid"
    assert await env.alipay.notify(no) == (200, "success")  # the late notify: no second credit
    assert env.balance(u.user_id) == (20_000_000, 0)
    assert env.reconcile() == []


async def test_pending_job_credits_a_paid_order_whose_notify_never_came(env: PayEnv) -> None:
    u = env.user()
    no = (await new_order(env, u, "30.00"))["out_trade_no"]
    env.alipay.pay(no)
    due = order_row(env, no)["next_check_at"]
    topups = env.platform.topups
    # Not due yet: not asked (other tests' orders may be).
    env.admin.call(topups.run_due(now=due - 1))
    assert order_row(env, no)["checks"] == 0 and env.balance(u.user_id) == (0, 0)

    # Two job runs at once (two instances, say): one credit.
    async def both() -> list[int]:
        return list(await asyncio.gather(topups.run_due(now=due), topups.run_due(now=due)))

    env.admin.call(both())
    assert env.balance(u.user_id) == (30_000_000, 0)
    assert env.order_status(no) == "paid"
    assert len(env.entries(u.user_id, "topup")) == 1
    env.admin.call(topups.run_due(now=due + 10**9))  # paid orders are not due any more
    assert len(env.entries(u.user_id, "topup")) == 1
    assert env.reconcile() == []


async def test_pending_job_closes_unpaid_orders_and_rides_out_failures(env: PayEnv) -> None:
    u = env.user()
    topups = env.platform.topups
    never = (await new_order(env, u, "10.00"))["out_trade_no"]
    outage = (await new_order(env, u, "11.00"))["out_trade_no"]
    wrong = (await new_order(env, u, "12.00"))["out_trade_no"]
    env.alipay.pay(outage)
    env.alipay.pay(wrong).total_amount = "120.00"  # a paid trade whose amount is not ours
    first = order_row(env, never)
    now = first["expires_at"] - 60_000  # a minute before the orders expire

    env.alipay.fail_with_status = 502
    try:
        env.admin.call(topups.check(_order(env, outage), now))
    finally:
        env.alipay.fail_with_status = None
    assert order_row(env, outage)["status"] == "pending" and order_row(env, outage)["checks"] == 1

    for n in (never, wrong):
        env.admin.call(topups.check(_order(env, n), now))
    assert order_row(env, never)["status"] == "pending"  # not scanned yet, not expired
    assert order_row(env, never)["next_check_at"] > now
    assert order_row(env, wrong)["status"] == "pending"  # amount mismatch: never credited
    assert env.balance(u.user_id) == (0, 0)

    env.admin.call(topups.check(_order(env, outage), now))  # the gateway is back
    assert order_row(env, outage)["status"] == "paid"
    after_expiry = first["expires_at"] + CLOSE_GRACE_MS
    env.admin.call(topups.check(_order(env, never), after_expiry))
    assert order_row(env, never)["status"] == "closed"
    assert env.balance(u.user_id) == (11_000_000, 0)

    # A payment confirmed after we closed the order still credits it: paid beats closed.
    env.alipay.pay(never)
    assert await env.alipay.notify(never) == (200, "success")
    assert env.order_status(never) == "paid"
    assert env.balance(u.user_id) == (21_000_000, 0)
    assert env.reconcile() == []


def _order(env: PayEnv, no: str) -> Any:
    order = env.admin.call(env.platform.topups.get(None, no))
    assert order is not None
    return order


async def test_order_creation_is_throttled_per_user(env: PayEnv) -> None:
    u = env.user()
    async with env.client(u) as c:
        for _ in range(10):
            r = await c.post("/api/topups", json={"amount": "1", "method": "alipay_page"})
            assert r.status_code == 200, r.text
        r = await c.post("/api/topups", json={"amount": "1", "method": "alipay_page"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert r.json()["error"]["code"] == "rate_limited"
    await new_order(env, env.user(), "1", "alipay_page")  # another user still can
