"""Redeem codes through the console API on SQLite and PostgreSQL: admins create batches (codes
shown once, stored hashed), users redeem each code once, 100 concurrent redemptions of one code
credit exactly once, and every refusal names the field."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator

import httpx
import pytest
from payhelp import PayEnv, User, pay_env

from llmage.db.repos.redeem import RedeemRepo
from llmage.services.redeem import RedeemService, normalise
from support.backends import BACKENDS


@pytest.fixture(scope="module", params=BACKENDS)
def env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PayEnv]:
    yield from pay_env(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def admin(env: PayEnv) -> User:
    return env.user(role="admin")


async def make_batch(env: PayEnv, admin: User, **body: object) -> dict[str, object]:
    async with env.client(admin) as c:
        r = await c.post("/api/admin/redeem-codes", json={"count": 1, "amount": "5", **body})
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return r.json()  # type: ignore[no-any-return]


async def test_batch_codes_are_shown_once_and_stored_hashed(env: PayEnv, admin: User) -> None:
    batch = await make_batch(env, admin, count=3, amount="8.88", note="launch <b>party</b>")
    codes = batch["codes"]
    assert isinstance(codes, list) and len(set(codes)) == 3
    assert (batch["amount"], batch["count"]) == ({"amount": "8.880000", "micros": 8_880_000}, 3)
    stored = env.sql(
        "SELECT code_hash, prefix FROM redeem_codes WHERE batch_id = :b", b=batch["batch_id"]
    )
    assert {h for h, _ in stored} == {
        hashlib.sha256(normalise(c).encode()).hexdigest() for c in codes
    }
    for code in codes:  # the plain code is nowhere in the database
        assert not env.sql("SELECT 1 FROM redeem_codes WHERE code_hash = :c OR prefix = :c", c=code)
    async with env.client(admin) as c:
        listed = (
            await c.get("/api/admin/redeem-codes", params={"batch_id": batch["batch_id"]})
        ).json()
        batches = (await c.get("/api/admin/redeem-batches")).json()
    assert len(listed["items"]) == 3 and not listed["has_more"]
    assert all(i["status"] == "unused" and "…" in i["prefix"] for i in listed["items"])
    assert all(i["prefix"] not in codes for i in listed["items"])
    assert listed["items"][0]["note"] == "launch <b>party</b>"  # stored as given; pages escape
    mine = next(b for b in batches["items"] if b["id"] == batch["batch_id"])
    assert (mine["count"], mine["redeemed"], mine["created_by"]) == (3, 0, admin.user_id)


async def test_redeem_credits_once_and_says_why_not(env: PayEnv, admin: User) -> None:
    batch = await make_batch(env, admin, amount="12.5")
    code = batch["codes"][0]  # type: ignore[index]
    u, v = env.user(), env.user()
    async with env.client(u) as c:
        # Typed by hand: lower case, no dashes, spaces around.
        r = await c.post("/api/redeem", json={"code": f"  {code.replace('-', '').lower()} "})
        assert r.status_code == 200, r.text
        money = {"amount": "12.500000", "micros": 12_500_000}
        assert r.json() == {"credited": money, "balance": money}
        again = await c.post("/api/redeem", json={"code": code})
        assert again.status_code == 409 and again.json()["error"]["code"] == "redeem_code_used"
    async with env.client(v) as c:
        r = await c.post("/api/redeem", json={"code": code})
        assert r.status_code == 409 and r.json()["error"]["param"] == "code"
        for bad, status in (
            ("ABCD", 400),
            ("", 400),
            ("O0O0-O0O0-O0O0-O0O0-O0O0", 400),
            ("AAAA-AAAA-AAAA-AAAA-AAAA", 404),
        ):
            r = await c.post("/api/redeem", json={"code": bad})
            assert r.status_code == status, (bad, r.text)
            assert r.json()["error"]["param"] == "code"
        r = await c.post("/api/redeem", json={"code": ["x"]})
        assert r.status_code == 400 and r.json()["error"]["param"] == "code"
    assert env.balance(u.user_id) == (12_500_000, 0) and env.balance(v.user_id) == (0, 0)
    [(delta, ref, memo, actor)] = env.entries(u.user_id, "redeem")
    assert delta == 12_500_000 and ref.startswith("redeem:") and actor is None
    assert memo is not None and memo.startswith("redeem code ")
    async with env.client(admin) as c:
        [item] = (
            await c.get("/api/admin/redeem-codes", params={"batch_id": batch["batch_id"]})
        ).json()["items"]
    assert (item["status"], item["redeemed_by"], item["redeemed_by_name"]) == (
        "redeemed",
        u.user_id,
        u.username,
    )
    assert env.reconcile() == []


async def test_100_concurrent_redemptions_of_one_code_credit_once(env: PayEnv, admin: User) -> None:
    code = (await make_batch(env, admin, amount="3.00"))["codes"][0]  # type: ignore[index]
    users = [env.user() for _ in range(10)]
    clients = [env.client(u) for u in users]
    try:
        answers = await asyncio.gather(
            *(clients[i % 10].post("/api/redeem", json={"code": code}) for i in range(100))
        )
    finally:
        for c in clients:
            await c.aclose()
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] + [409] * 99, statuses
    balances = [env.balance(u.user_id)[0] for u in users]
    assert sorted(balances) == [0] * 9 + [3_000_000]
    assert sum(len(env.entries(u.user_id, "redeem")) for u in users) == 1
    assert env.reconcile() == []


async def test_expired_codes_are_refused(env: PayEnv, admin: User) -> None:
    # A batch made "in the past" (its clock a day behind) whose codes expired an hour ago.
    day = 86_400_000
    real = env.platform.redeem._clock
    past = RedeemService(
        RedeemRepo(env.platform.db.engine, env.platform.db.money), lambda: real() - day
    )
    batch = env.admin.call(
        past.create_batch(
            admin_id=admin.user_id, count=1, amount=1_000_000, expires_at=real() - day // 24
        )
    )
    u = env.user()
    async with env.client(u) as c:
        r = await c.post("/api/redeem", json={"code": batch.codes[0]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "redeem_code_expired"
    assert env.balance(u.user_id) == (0, 0)
    async with env.client(admin) as c:
        items = (await c.get("/api/admin/redeem-codes", params={"status": "expired"})).json()[
            "items"
        ]
    assert batch.id in {i["batch_id"] for i in items}


async def test_batch_input_is_checked(env: PayEnv, admin: User) -> None:
    async with env.client(admin) as c:
        for body, param in (
            ({"count": 0, "amount": "1"}, "count"),
            ({"count": 1001, "amount": "1"}, "count"),
            ({"count": 1, "amount": "0"}, "amount"),
            ({"count": 1, "amount": "100000.01"}, "amount"),
            ({"count": 1, "amount": "1", "expires_at": 1}, "expires_at"),
            ({"count": 1, "amount": "1", "expires_in_days": 0}, "expires_in_days"),
            (
                {"count": 1, "amount": "1", "expires_in_days": 1, "expires_at": 10**13},
                "expires_in_days",
            ),
            ({"count": "many", "amount": "1"}, "count"),
        ):
            r = await c.post("/api/admin/redeem-codes", json=body)
            assert r.status_code == 400, (body, r.text)
            assert r.json()["error"]["param"] == param, (body, r.json())
        r = await c.post(
            "/api/admin/redeem-codes", json={"count": 2, "amount": "1", "expires_in_days": 7}
        )
        assert r.status_code == 200 and r.json()["expires_at"].endswith("Z")
        r = await c.get("/api/admin/redeem-codes", params={"status": "lost"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "status"


async def test_admin_routes_refuse_users(env: PayEnv) -> None:
    u = env.user()
    async with env.client(u) as c:
        for method, path in (
            ("POST", "/api/admin/redeem-codes"),
            ("GET", "/api/admin/redeem-codes"),
            ("GET", "/api/admin/redeem-batches"),
            ("GET", "/api/admin/orders"),
            ("POST", f"/api/admin/users/{u.user_id}/credit"),
            ("POST", f"/api/admin/users/{u.user_id}/debit"),
        ):
            r = await c.request(method, path, json={"count": 1, "amount": "1", "reason": "x"})
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (path, r.text)
        # A user's own API key is no admin key either.
        async with httpx.AsyncClient(base_url=env.url, timeout=30) as k:
            r = await k.get("/api/admin/orders", headers={"Authorization": f"Bearer {u.key}"})
            assert r.status_code == 403
    assert env.balance(u.user_id) == (0, 0)


async def test_wrong_codes_are_throttled(env: PayEnv, admin: User) -> None:
    code = (await make_batch(env, admin, amount="1"))["codes"][0]  # type: ignore[index]
    u = env.user()
    async with env.client(u) as c:
        for _ in range(10):
            r = await c.post("/api/redeem", json={"code": "ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ"})
            assert r.status_code == 404
        r = await c.post("/api/redeem", json={"code": code})  # even a good one, for a while
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert r.json()["error"]["param"] == "code"
    assert env.balance(u.user_id) == (0, 0)
    async with env.client(env.user()) as c:  # other users are not affected
        assert (await c.post("/api/redeem", json={"code": code})).status_code == 200
