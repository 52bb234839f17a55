"""`reconcile`: clean on a busy ledger, and each kind of corruption reported under its rule, by
the function and by `llmage reconcile` (exit status 1 on a broken ledger, 0 on a clean one)."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from conftest import Stack
from llmage.billing.ledger import Hold, Ledger
from llmage.billing.reconcile import CHECKS, reconcile
from llmage.db.engine import Database
from llmage.db.migrate import upgrade
from llmage.db.repos.accounts import AccountRepo
from llmage.db.repos.usage import UsageRecord, usage_insert
from llmage.domain.clock import now_ms
from support.backends import BACKENDS, database_url
from support.servers import FakeOpenAI

LLMAGE = str(Path(sys.executable).with_name("llmage"))

BALANCE = "balance equals the sum of its ledger entries"
HELD_ENTRIES = "held equals the sum of its ledger entries"
HELD_OPEN = "held equals the open holds"
NEGATIVE = "no balance or available balance below zero"
OPENING = "every hold has exactly one opening entry"
TERMINAL = "settled holds have one terminal entry, open holds none"
MATCH = "terminal entries match their hold (charge ≤ hold, whole hold released)"
USAGE = "usage records charge what their hold captured"
KEY_SPEND = "key spend equals its captures plus open holds"


def test_rule_names_are_the_ones_this_file_expects() -> None:
    assert set(CHECKS) >= {
        BALANCE,
        HELD_ENTRIES,
        HELD_OPEN,
        NEGATIVE,
        OPENING,
        TERMINAL,
        MATCH,
        USAGE,
        KEY_SPEND,
    }


# -- a busy ledger made through real HTTP ------------------------------------------------------


def test_reconcile_clean_after_busy_mixed_traffic(stack: Stack, upstream: FakeOpenAI) -> None:
    accts = [stack.account("1") for _ in range(3)]
    limited = stack.account("10", spend_limit=300)
    upstream.chunk_delay = 0.01
    upstream.stream_chunks = 20

    async def one(c: httpx.AsyncClient, i: int) -> int:
        acct = limited if i % 7 == 0 else accts[i % 3]
        headers = stack.headers(acct)
        model = "qwen3-max" if i % 5 == 0 else "deepseek-chat"
        payload: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": f"call {i} " + "x" * (i % 40)}],
            "max_tokens": 8 + i % 30,
            "stream": i % 2 == 0,
        }
        if i % 4 == 1:  # some non-stream calls among the streams
            payload["stream"] = False
        if not payload["stream"]:
            return (await c.post("/v1/chat/completions", json=payload, headers=headers)).status_code
        async with c.stream("POST", "/v1/chat/completions", json=payload, headers=headers) as r:
            if i % 6 == 0:  # cut by the client after the first event
                async for _ in r.aiter_lines():
                    break
            else:
                await r.aread()
            return r.status_code

    async def traffic() -> list[int]:
        async with httpx.AsyncClient(base_url=stack.url, timeout=30) as c:
            return await asyncio.gather(*(one(c, i) for i in range(120)))

    statuses = asyncio.run(traffic())
    # Some succeed, some run out of money or limit: both kinds of traffic really happened.
    assert statuses.count(200) >= 20
    assert statuses.count(429) >= 1
    upstream.status = 500  # and a burst of upstream failures
    for acct in accts:
        r = httpx.post(
            f"{stack.url}/v1/chat/completions",
            headers=stack.headers(acct),
            json={"model": "deepseek-chat", "messages": [{"role": "user", "content": "x"}]},
            timeout=30,
        )
        assert r.status_code in (502, 429)
    for acct in (*accts, limited):
        assert stack.wait_settled(acct.user_id)[1] == 0
    assert stack.reconcile() == []


# -- a busy ledger made directly, then corrupted -------------------------------------------------


@dataclass
class Ledgerful:
    url: str
    db: Database
    tmp: Path
    users: list[int] = field(default_factory=list)
    keys: dict[int, int] = field(default_factory=dict)  # user -> key
    captured: list[Hold] = field(default_factory=list)  # settled with a capture + usage record
    released: list[Hold] = field(default_factory=list)
    open_keyless: list[Hold] = field(default_factory=list)
    open_keyed: list[Hold] = field(default_factory=list)

    async def sql(self, statement: str, **params: Any) -> None:
        async with self.db.engine.begin() as conn:
            await conn.execute(text(statement), params)

    async def rules(self) -> set[str]:
        return {v.rule for v in await reconcile(self.db.engine)}


def _record(hold: Hold, amount: int) -> UsageRecord:
    return UsageRecord(
        id=secrets.token_hex(8),
        user_id=hold.user_id,
        key_id=hold.key_id,
        hold_id=hold.id,
        model="deepseek-chat",
        llmid=None,
        channel_id=None,
        dialect="openai",
        stream=False,
        status="ok",
        prompt_tokens=3,
        completion_tokens=4,
        cached_tokens=0,
        amount=amount,
        estimated=False,
        latency_ms=5,
        error=None,
        created_at=now_ms(),
    )


async def build_busy_ledger(led: Ledgerful) -> None:
    ledger = Ledger(led.db.money)
    repo = AccountRepo(led.db.engine)
    for n in range(3):
        uid = await repo.create_user("r" + secrets.token_hex(6), "x")
        led.users.append(uid)
        led.keys[uid] = await repo.create_key(
            uid,
            name="k",
            prefix="sk-x",
            key_hash=secrets.token_hex(32),
            spend_limit=None if n else 10**9,
        )
        for i in range(3):
            assert await ledger.credit(uid, 1_000_000 + i, f"busy:{uid}:{i}")
        assert await ledger.credit(uid, -1_000, f"adj:{uid}", kind="adjust")

        async def hold(uid: int = uid, keyed: bool = True, amount: int = 50_000) -> Hold:
            return await ledger.hold(
                user_id=uid,
                key_id=led.keys[uid] if keyed else None,
                amount=amount,
                purpose="chat",
            )

        for i in range(4):
            h = await hold(amount=50_000 + i)
            amount = 10_000 * (i + 1)
            assert await ledger.settle(h, amount, [usage_insert(_record(h, amount))])
            led.captured.append(h)
        for _ in range(2):
            h = await hold()
            assert await ledger.settle(h, 0, [usage_insert(_record(h, 0))])
            led.released.append(h)
        led.open_keyless.append(await hold(keyed=False, amount=7_000))
        led.open_keyed.append(await hold(amount=9_000))


@pytest.fixture(scope="module", params=BACKENDS)
def ledger_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp(f"reconcile-{request.param}")
    with database_url(request.param, tmp) as url:
        upgrade(url)
        yield url, tmp


@pytest.fixture(scope="module")
async def busy(ledger_url: tuple[str, Path]) -> AsyncIterator[Ledgerful]:
    url, tmp = ledger_url
    db = Database(url)
    await db.start()
    led = Ledgerful(url, db, tmp)
    try:
        await build_busy_ledger(led)
        yield led
    finally:
        await db.close()


@pytest.fixture
async def ledger(busy: Ledgerful) -> AsyncIterator[Ledgerful]:
    """The busy ledger, clean before and (after each test undoes its damage) after."""
    assert await reconcile(busy.db.engine) == []
    yield busy
    assert await reconcile(busy.db.engine) == [], "a corruption test did not undo its change"


async def test_busy_direct_ledger_is_clean(ledger: Ledgerful) -> None:
    assert len(ledger.captured) == 12 and len(ledger.released) == 6
    assert await ledger.rules() == set()


async def test_balance_not_matching_entries(ledger: Ledgerful) -> None:
    uid = ledger.users[1]
    await ledger.sql("UPDATE accounts SET balance = balance + 1 WHERE user_id = :u", u=uid)
    try:
        violations = await reconcile(ledger.db.engine)
        assert {v.rule for v in violations} == {BALANCE}
        [v] = violations
        assert [row[0] for row in v.rows] == [uid]
    finally:
        await ledger.sql("UPDATE accounts SET balance = balance - 1 WHERE user_id = :u", u=uid)


async def test_held_not_matching_open_holds(ledger: Ledgerful) -> None:
    hold = ledger.open_keyless[0]
    await ledger.sql("UPDATE holds SET amount = amount + 3 WHERE id = :h", h=hold.id)
    try:
        assert await ledger.rules() == {HELD_OPEN}
    finally:
        await ledger.sql("UPDATE holds SET amount = amount - 3 WHERE id = :h", h=hold.id)


async def test_open_hold_closed_without_entries(ledger: Ledgerful) -> None:
    """A hold flipped to 'released' behind the ledger's back: still counted in `held`."""
    hold = ledger.open_keyless[1]
    await ledger.sql("UPDATE holds SET state = 'released', captured = 0 WHERE id = :h", h=hold.id)
    try:
        rules = await ledger.rules()
        assert HELD_OPEN in rules and TERMINAL in rules
    finally:
        await ledger.sql(
            "UPDATE holds SET state = 'open', captured = NULL WHERE id = :h", h=hold.id
        )


async def test_hold_with_two_terminal_entries(ledger: Ledgerful) -> None:
    """A settlement applied twice, its money movement compensated so only the rule that counts
    terminal entries can notice."""
    hold = ledger.captured[5]
    ref = "dup:" + secrets.token_hex(4)
    await ledger.sql(
        "INSERT INTO ledger_entries (user_id, kind, delta_balance, delta_held, ref, hold_id,"
        " created_at) SELECT user_id, kind, delta_balance, delta_held, :r, hold_id, created_at"
        " FROM ledger_entries WHERE hold_id = :h AND kind = 'capture'",
        r=ref,
        h=hold.id,
    )
    await ledger.sql(
        "INSERT INTO ledger_entries (user_id, kind, delta_balance, delta_held, ref, created_at)"
        " SELECT user_id, 'adjust', -delta_balance, -delta_held, :r2, created_at"
        " FROM ledger_entries WHERE ref = :r",
        r=ref,
        r2=ref + ":fix",
    )
    try:
        assert await ledger.rules() == {TERMINAL}
    finally:
        await ledger.sql(
            "DELETE FROM ledger_entries WHERE ref IN (:r, :r2)", r=ref, r2=ref + ":fix"
        )


async def test_capture_larger_than_hold(ledger: Ledgerful) -> None:
    """The terminal entry charged one micro-unit more than the hold captured (the account
    debited to match, so the balance rules still hold)."""
    hold = ledger.captured[2]
    await ledger.sql(
        "UPDATE ledger_entries SET delta_balance = :charge WHERE hold_id = :h AND kind = 'capture'",
        charge=-(hold.amount + 1),
        h=hold.id,
    )
    captured = 30_000  # ledger.captured[2] captured 10_000 * 3
    extra = hold.amount + 1 - captured
    await ledger.sql(
        "UPDATE accounts SET balance = balance - :x WHERE user_id = :u", x=extra, u=hold.user_id
    )
    try:
        assert await ledger.rules() == {MATCH}
    finally:
        await ledger.sql(
            "UPDATE accounts SET balance = balance + :x WHERE user_id = :u",
            x=extra,
            u=hold.user_id,
        )
        await ledger.sql(
            "UPDATE ledger_entries SET delta_balance = :c WHERE hold_id = :h AND kind = 'capture'",
            c=-captured,
            h=hold.id,
        )


async def test_release_that_does_not_release_the_whole_hold(ledger: Ledgerful) -> None:
    hold = ledger.released[0]
    await ledger.sql(
        "UPDATE ledger_entries SET delta_held = delta_held + 1 WHERE hold_id = :h"
        " AND kind = 'release'",
        h=hold.id,
    )
    await ledger.sql("UPDATE accounts SET held = held + 1 WHERE user_id = :u", u=hold.user_id)
    try:
        rules = await ledger.rules()
        assert MATCH in rules and HELD_OPEN in rules
    finally:
        await ledger.sql("UPDATE accounts SET held = held - 1 WHERE user_id = :u", u=hold.user_id)
        await ledger.sql(
            "UPDATE ledger_entries SET delta_held = delta_held - 1 WHERE hold_id = :h"
            " AND kind = 'release'",
            h=hold.id,
        )


async def test_usage_amount_mismatch(ledger: Ledgerful) -> None:
    hold = ledger.captured[7]
    await ledger.sql("UPDATE usage_records SET amount = amount + 1 WHERE hold_id = :h", h=hold.id)
    try:
        violations = await reconcile(ledger.db.engine)
        assert {v.rule for v in violations} == {USAGE}
        assert len(violations[0].rows) == 1
    finally:
        await ledger.sql(
            "UPDATE usage_records SET amount = amount - 1 WHERE hold_id = :h", h=hold.id
        )


async def test_released_hold_with_charged_usage_record(ledger: Ledgerful) -> None:
    hold = ledger.released[3]
    await ledger.sql("UPDATE usage_records SET amount = 5 WHERE hold_id = :h", h=hold.id)
    try:
        assert await ledger.rules() == {USAGE}
    finally:
        await ledger.sql("UPDATE usage_records SET amount = 0 WHERE hold_id = :h", h=hold.id)


async def test_key_spend_mismatch(ledger: Ledgerful) -> None:
    key = ledger.keys[ledger.users[2]]
    await ledger.sql("UPDATE api_keys SET spent = spent + 1 WHERE id = :k", k=key)
    try:
        assert await ledger.rules() == {KEY_SPEND}
    finally:
        await ledger.sql("UPDATE api_keys SET spent = spent - 1 WHERE id = :k", k=key)


async def test_hold_missing_its_opening_entry(ledger: Ledgerful) -> None:
    hold = ledger.open_keyed[0]
    ref = f"hold:{hold.id}"
    await ledger.sql("UPDATE ledger_entries SET kind = 'adjust' WHERE ref = :r", r=ref)
    try:
        assert await ledger.rules() == {OPENING}
    finally:
        await ledger.sql("UPDATE ledger_entries SET kind = 'hold' WHERE ref = :r", r=ref)


# -- the command ----------------------------------------------------------------------------------


def run_cli(url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LLMAGE_DATA_DIR": str(data_dir),
        "LLMAGE_DATABASE_URL": url,
        "LLMAGE_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [LLMAGE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


async def test_cli_reconcile_exit_status(ledger: Ledgerful) -> None:
    clean = await asyncio.to_thread(run_cli, ledger.url, ledger.tmp, "reconcile")
    assert clean.returncode == 0, clean.stderr
    assert f"{len(CHECKS)} invariants hold" in clean.stdout
    assert "BROKEN" not in clean.stdout + clean.stderr

    uid = ledger.users[0]
    await ledger.sql("UPDATE accounts SET balance = balance + 7 WHERE user_id = :u", u=uid)
    try:
        broken = await asyncio.to_thread(run_cli, ledger.url, ledger.tmp, "reconcile")
    finally:
        await ledger.sql("UPDATE accounts SET balance = balance - 7 WHERE user_id = :u", u=uid)
    assert broken.returncode == 1, (broken.stdout, broken.stderr)
    assert f"BROKEN: {BALANCE}" in broken.stderr
    assert "Traceback" not in broken.stderr
    assert str(uid) in broken.stderr
