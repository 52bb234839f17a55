"""An admin's manual credit and debit, and the admin order list, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from payhelp import PayEnv, User, pay_env

from support.backends import BACKENDS


@pytest.fixture(scope="module", params=BACKENDS)
def env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PayEnv]:
    yield from pay_env(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def admin(env: PayEnv) -> User:
    return env.user(role="admin")


async def test_credit_and_debit_record_reason_and_admin(env: PayEnv, admin: User) -> None:
    u = env.user()
    async with env.client(admin) as c:
        r = await c.post(
            f"/api/admin/users/{u.user_id}/credit",
            json={"amount": "100", "reason": "补偿 <script>"},
        )
        assert r.status_code == 200, r.text
        hundred = {"amount": "100.000000", "micros": 100_000_000}
        assert r.json() == {
            "applied": True,
            "user_id": u.user_id,
            "balance": hundred,
            "held": {"amount": "0.000000", "micros": 0},
            "available": hundred,
        }
        r = await c.post(
            f"/api/admin/users/{u.user_id}/debit",
            json={"amount": 30.25, "reason": "refund reversal"},
        )
        assert r.status_code == 200 and r.json()["balance"]["micros"] == 69_750_000
    adjust = env.entries(u.user_id, "adjust")
    assert [(d, m, a) for d, _, m, a in adjust] == [
        (100_000_000, "补偿 <script>", admin.user_id),
        (-30_250_000, "refund reversal", admin.user_id),
    ]
    assert env.balance(u.user_id) == (69_750_000, 0)
    assert env.reconcile() == []


async def test_debit_never_takes_available_below_zero(env: PayEnv, admin: User) -> None:
    u = env.user("10")
    # An open hold of 4 (a running video task, say): 6 available.
    balance = 10_000_000
    hold = env.admin.call(
        env.platform.ledger.hold(user_id=u.user_id, key_id=None, amount=4_000_000, purpose="task")
    )
    available = balance - 4_000_000
    async with env.client(admin) as c:
        too_much = f"{(available + 1) / 1_000_000:.6f}"
        r = await c.post(
            f"/api/admin/users/{u.user_id}/debit", json={"amount": too_much, "reason": "x"}
        )
        assert r.status_code == 409 and r.json()["error"]["param"] == "amount", r.text
        # Many debits of the whole available balance at once: exactly one fits.
        exact = f"{available / 1_000_000:.6f}"
        rs = await asyncio.gather(
            *(
                c.post(
                    f"/api/admin/users/{u.user_id}/debit", json={"amount": exact, "reason": "all"}
                )
                for _ in range(10)
            )
        )
    assert sorted(r.status_code for r in rs) == [200] + [409] * 9
    assert env.balance(u.user_id) == (4_000_000, 4_000_000)
    env.admin.call(env.platform.ledger.settle(hold, 0))
    assert env.balance(u.user_id) == (4_000_000, 0)
    assert env.reconcile() == []


async def test_idempotency_key_applies_once(env: PayEnv, admin: User) -> None:
    u = env.user()
    async with env.client(admin) as c:
        headers = {"Idempotency-Key": "grant-42"}
        body = {"amount": "7", "reason": "grant"}
        rs = await asyncio.gather(
            *(
                c.post(f"/api/admin/users/{u.user_id}/credit", json=body, headers=headers)
                for _ in range(5)
            )
        )
    assert sorted(r.json()["applied"] for r in rs) == [False] * 4 + [True]
    assert all(r.json()["balance"]["micros"] == 7_000_000 for r in rs)
    assert env.balance(u.user_id) == (7_000_000, 0)


async def test_adjust_input_and_unknown_user(env: PayEnv, admin: User) -> None:
    u = env.user()
    async with env.client(admin) as c:
        for body, param in (
            ({"amount": "1"}, "reason"),
            ({"amount": "1", "reason": "   "}, "reason"),
            ({"amount": "1", "reason": "x" * 501}, "reason"),
            ({"amount": "-1", "reason": "x"}, "amount"),
            ({"amount": "0.0000001", "reason": "x"}, "amount"),
            ({"reason": "x"}, "amount"),
        ):
            r = await c.post(f"/api/admin/users/{u.user_id}/credit", json=body)
            assert r.status_code == 400 and r.json()["error"]["param"] == param, (body, r.text)
        r = await c.post("/api/admin/users/999999/credit", json={"amount": "1", "reason": "x"})
        assert r.status_code == 404
    # Scripts: an admin's API key works without a session or CSRF token.
    async with httpx.AsyncClient(base_url=env.url, timeout=30) as k:
        r = await k.post(
            f"/api/admin/users/{u.user_id}/credit",
            headers={"Authorization": f"Bearer {admin.key}"},
            json={"amount": "2", "reason": "script"},
        )
        assert r.status_code == 200 and r.json()["balance"]["micros"] == 2_000_000
    # A cookie session without the CSRF header is refused.
    async with env.client(admin, csrf=False) as c:
        r = await c.post(
            f"/api/admin/users/{u.user_id}/credit", json={"amount": "1", "reason": "x"}
        )
        assert r.status_code == 403
    assert env.balance(u.user_id) == (2_000_000, 0)


async def test_admin_sees_every_users_orders(env: PayEnv, admin: User) -> None:
    a, b = env.user(), env.user()
    nos = []
    for u in (a, b):
        async with env.client(u) as c:
            r = await c.post("/api/topups", json={"amount": "10", "method": "alipay_qr"})
            nos.append(r.json()["out_trade_no"])
    env.alipay.pay(nos[0])
    assert await env.alipay.notify(nos[0]) == (200, "success")
    async with env.client(admin) as c:
        every = (await c.get("/api/admin/orders", params={"page_size": 200})).json()["items"]
        paid = (await c.get("/api/admin/orders", params={"status": "paid"})).json()["items"]
        of_b = (await c.get("/api/admin/orders", params={"user_id": b.user_id})).json()["items"]
    by_no = {o["out_trade_no"]: o for o in every}
    assert by_no[nos[0]]["username"] == a.username and by_no[nos[0]]["status"] == "paid"
    assert by_no[nos[1]]["user_id"] == b.user_id and by_no[nos[1]]["status"] == "pending"
    assert "qr_code" not in by_no[nos[1]] and "pay_url" not in by_no[nos[1]]
    assert nos[0] in {o["out_trade_no"] for o in paid}
    assert all(o["status"] == "paid" for o in paid)
    assert [o["out_trade_no"] for o in of_b] == [nos[1]]


async def test_reconcile_checks_orders_and_codes_against_the_ledger(
    env: PayEnv, admin: User
) -> None:
    """Each payment invariant catches its own breakage (made by hand, then repaired)."""
    u = env.user()
    async with env.client(u) as c:
        no = (await c.post("/api/topups", json={"amount": "10", "method": "alipay_qr"})).json()[
            "out_trade_no"
        ]
    async with env.client(admin) as c:
        code_batch = (
            await c.post("/api/admin/redeem-codes", json={"count": 1, "amount": "1"})
        ).json()["batch_id"]
    assert env.reconcile() == []

    def broken() -> set[str]:
        return {v.rule for v in env.reconcile()}

    env.execute("UPDATE topup_orders SET status = 'paid' WHERE out_trade_no = :o", o=no)
    assert "a paid top-up order has one credit of its amount, an unpaid one none" in broken()
    env.execute("UPDATE topup_orders SET status = 'pending' WHERE out_trade_no = :o", o=no)

    env.execute(
        "INSERT INTO ledger_entries (user_id, kind, delta_balance, delta_held, ref, created_at)"
        " VALUES (:u, 'topup', 0, 0, 'topup:LMnosuchorder', 0)",
        u=u.user_id,
    )
    assert "every top-up credit belongs to a paid order of its user" in broken()
    env.execute("DELETE FROM ledger_entries WHERE ref = 'topup:LMnosuchorder'")

    env.execute(
        "UPDATE redeem_codes SET redeemed_by = :u, redeemed_at = 1 WHERE batch_id = :b",
        u=u.user_id,
        b=code_batch,
    )
    assert (
        "a redeemed code has one credit of its amount to its redeemer, an unused one none"
        in broken()
    )
    env.execute(
        "UPDATE redeem_codes SET redeemed_by = NULL, redeemed_at = NULL WHERE batch_id = :b",
        b=code_batch,
    )
    assert env.reconcile() == []
