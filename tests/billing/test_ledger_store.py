"""The ledger and its money store, directly on a real database (SQLite and PostgreSQL).

No HTTP here: these tests drive `Ledger` over `Database.money` and read the tables back, so a
failure points at the admission / settlement SQL itself."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy.exc
from sqlalchemy import func, select, text

from llmage.billing.ledger import Hold, Ledger
from llmage.billing.reconcile import reconcile
from llmage.db.engine import Database
from llmage.db.migrate import upgrade
from llmage.db.repos.accounts import AccountRepo
from llmage.db.tables import api_keys, holds, ledger_entries
from llmage.domain.clock import now_ms
from llmage.domain.errors import InsufficientBalance, InvalidApiKey, SpendLimitExceeded
from support.backends import BACKENDS, database_url

AMOUNT = 1_234  # micro-units per hold in the races: deliberately not a round number


@pytest.fixture(scope="module", params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp(f"ledger-{request.param}")
    with database_url(request.param, tmp) as u:
        upgrade(u)
        yield u


@pytest.fixture
async def db(url: str) -> AsyncIterator[Database]:
    d = Database(url)
    await d.start()
    try:
        yield d
    finally:
        await d.close()


@dataclass
class Acct:
    user_id: int
    key_id: int | None


async def make_account(
    db: Database,
    balance: int = 0,
    *,
    key: bool = True,
    spend_limit: int | None = None,
    expires_at: int | None = None,
) -> Acct:
    repo = AccountRepo(db.engine)
    uid = await repo.create_user("u" + secrets.token_hex(6), "not-a-real-hash")
    key_id = None
    if key:
        key_id = await repo.create_key(
            uid,
            name="k",
            prefix="sk-test…0000",
            key_hash=secrets.token_hex(32),
            spend_limit=spend_limit,
            expires_at=expires_at,
        )
    if balance:
        assert await Ledger(db.money).credit(uid, balance, f"seed:{secrets.token_hex(8)}")
    return Acct(uid, key_id)


async def balance_of(db: Database, uid: int) -> tuple[int, int]:
    return await AccountRepo(db.engine).balance(uid)


async def key_spent(db: Database, key_id: int) -> int:
    async with db.engine.connect() as conn:
        return int(
            (await conn.execute(select(api_keys.c.spent).where(api_keys.c.id == key_id))).one()[0]
        )


async def hold_row(db: Database, hold_id: str) -> tuple[str, int, int | None]:
    q = select(holds.c.state, holds.c.amount, holds.c.captured).where(holds.c.id == hold_id)
    async with db.engine.connect() as conn:
        row = (await conn.execute(q)).one()
    return row.state, row.amount, row.captured


async def entry_count(db: Database, uid: int) -> int:
    q = select(func.count()).select_from(ledger_entries).where(ledger_entries.c.user_id == uid)
    async with db.engine.connect() as conn:
        return int((await conn.execute(q)).scalar_one())


async def hold_many(
    ledger: Ledger, acct: Acct, n: int, amount: int = AMOUNT
) -> list[Hold | BaseException]:
    return await asyncio.gather(
        *(
            ledger.hold(user_id=acct.user_id, key_id=acct.key_id, amount=amount, purpose="chat")
            for _ in range(n)
        ),
        return_exceptions=True,
    )


class Sampler:
    """Reads available balance over and over while a race runs; remembers the lowest value."""

    def __init__(self, db: Database, uid: int) -> None:
        self.db, self.uid = db, uid
        self.lowest: int | None = None
        self.samples = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            balance, held = await balance_of(self.db, self.uid)
            assert balance >= 0 and held >= 0
            avail = balance - held
            self.lowest = avail if self.lowest is None else min(self.lowest, avail)
            self.samples += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> Sampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task


# -- credit -----------------------------------------------------------------------------------


async def test_credit_applies_once_per_ref(db: Database) -> None:
    ledger = Ledger(db.money)
    acct = await make_account(db, key=False)
    ref = "order-" + secrets.token_hex(6)
    assert await ledger.credit(acct.user_id, 5_000_000, ref) is True
    assert await ledger.credit(acct.user_id, 5_000_000, ref) is False
    # Same ref, different amount: still the same order, still nothing.
    assert await ledger.credit(acct.user_id, 7_000_000, ref) is False
    assert await balance_of(db, acct.user_id) == (5_000_000, 0)
    assert await entry_count(db, acct.user_id) == 1
    # A different ref is a different top-up.
    assert await ledger.credit(acct.user_id, 1, ref + "-2") is True
    assert await balance_of(db, acct.user_id) == (5_000_001, 0)


async def test_duplicate_credits_raced_concurrently_apply_once(db: Database) -> None:
    ledger = Ledger(db.money)
    acct = await make_account(db, key=False)
    ref = "notify-" + secrets.token_hex(6)
    done = await asyncio.gather(*(ledger.credit(acct.user_id, 3_000_000, ref) for _ in range(20)))
    assert done.count(True) == 1
    assert await balance_of(db, acct.user_id) == (3_000_000, 0)


# -- hold and settle --------------------------------------------------------------------------


async def test_hold_reduces_available_not_balance(db: Database) -> None:
    ledger = Ledger(db.money)
    acct = await make_account(db, 10_000)
    hold = await ledger.hold(user_id=acct.user_id, key_id=acct.key_id, amount=3_000, purpose="chat")
    assert await balance_of(db, acct.user_id) == (10_000, 3_000)
    assert await hold_row(db, hold.id) == ("open", 3_000, None)
    assert acct.key_id is not None
    assert await key_spent(db, acct.key_id) == 3_000
    # More than what is available (7_000) is refused and changes nothing.
    with pytest.raises(InsufficientBalance):
        await ledger.hold(user_id=acct.user_id, key_id=acct.key_id, amount=7_001, purpose="chat")
    assert await balance_of(db, acct.user_id) == (10_000, 3_000)
    assert await key_spent(db, acct.key_id) == 3_000
    # Exactly what is available is admitted.
    await ledger.hold(user_id=acct.user_id, key_id=acct.key_id, amount=7_000, purpose="chat")
    assert await balance_of(db, acct.user_id) == (10_000, 10_000)


async def test_settle_captures_releases_rest_and_adjusts_key_spend(db: Database) -> None:
    ledger = Ledger(db.money)
    acct = await make_account(db, 10_000)
    assert acct.key_id is not None
    hold = await ledger.hold(user_id=acct.user_id, key_id=acct.key_id, amount=3_000, purpose="chat")
    assert await ledger.settle(hold, 1_200) is True
    assert await balance_of(db, acct.user_id) == (8_800, 0)
    assert await hold_row(db, hold.id) == ("captured", 3_000, 1_200)
    assert await key_spent(db, acct.key_id) == 1_200


async def test_settle_clamps_capture_to_the_hold(db: Database) -> None:
    ledger = Ledger(db.money)
    acct = await make_account(db, 10_000)
    assert acct.key_id is not None
    hold = await ledger.hold(user_id=acct.user_id, key_id=acct.key_id, amount=2_000, purpose="chat")
    assert await ledger.settle(hold, 9_999_999) is True
    assert await balance_of(db, acct.user_id) == (8_000, 0)
    assert await hold_row(db, hold.id) == ("captured", 2_000, 2_000)
    assert await key_spent(db, acct.key_id) == 2_000


async def test_settle_zero_is_a_release(db: Database) -> None:
    ledger = Ledger(db.money)
    acct = await make_account(db, 10_000)
    assert acct.key_id is not None
    hold = await ledger.hold(user_id=acct.user_id, key_id=acct.key_id, amount=4_000, purpose="chat")
    assert await ledger.settle(hold, 0) is True
    assert await balance_of(db, acct.user_id) == (10_000, 0)
    assert await hold_row(db, hold.id) == ("released", 4_000, 0)
    assert await key_spent(db, acct.key_id) == 0


async def test_second_settle_changes_nothing(db: Database) -> None:
    ledger = Ledger(db.money)
    acct = await make_account(db, 10_000)
    assert acct.key_id is not None
    hold = await ledger.hold(user_id=acct.user_id, key_id=acct.key_id, amount=3_000, purpose="chat")
    assert await ledger.settle(hold, 1_000) is True
    before = (
        await balance_of(db, acct.user_id),
        await key_spent(db, acct.key_id),
        await entry_count(db, acct.user_id),
    )
    # Same amount, a different amount, a release: all refused.
    assert await ledger.settle(hold, 1_000) is False
    assert await ledger.settle(hold, 2_500) is False
    assert await ledger.settle(hold, 0) is False
    after = (
        await balance_of(db, acct.user_id),
        await key_spent(db, acct.key_id),
        await entry_count(db, acct.user_id),
    )
    assert after == before == ((9_000, 0), 1_000, 3)
    assert await hold_row(db, hold.id) == ("captured", 3_000, 1_000)


async def test_concurrent_settles_of_one_hold_from_two_stores(db: Database, url: str) -> None:
    """Two pollers (two processes) settle the same hold at once: exactly one wins."""
    other = Database(url)
    await other.start()
    try:
        acct = await make_account(db, 10_000)
        hold = await Ledger(db.money).hold(
            user_id=acct.user_id, key_id=acct.key_id, amount=3_000, purpose="task"
        )
        attempts = [(d, c) for d in (db, other) for c in (500, 3_000, 0, 10)]
        results = await asyncio.gather(*(Ledger(d.money).settle(hold, c) for d, c in attempts))
        assert results.count(True) == 1
        winner = attempts[results.index(True)][1]
        state, _, captured = await hold_row(db, hold.id)
        assert captured == winner
        assert state == ("captured" if winner else "released")
        assert await balance_of(db, acct.user_id) == (10_000 - winner, 0)
        assert await entry_count(db, acct.user_id) == 3
    finally:
        await other.close()


# -- races ------------------------------------------------------------------------------------


async def test_200_concurrent_holds_admit_exactly_ten(db: Database) -> None:
    ledger = Ledger(db.money)
    acct = await make_account(db, 10 * AMOUNT)
    async with Sampler(db, acct.user_id) as sampler:
        results = await hold_many(ledger, acct, 200)
    won = [r for r in results if isinstance(r, Hold)]
    lost = [r for r in results if not isinstance(r, Hold)]
    assert len(won) == 10
    assert len(lost) == 190
    assert all(isinstance(e, InsufficientBalance) for e in lost), {type(e) for e in lost}
    assert sampler.samples > 0 and sampler.lowest is not None and sampler.lowest >= 0
    assert await balance_of(db, acct.user_id) == (10 * AMOUNT, 10 * AMOUNT)
    assert all(await asyncio.gather(*(ledger.settle(h, AMOUNT) for h in won)))
    assert await balance_of(db, acct.user_id) == (0, 0)
    assert acct.key_id is not None
    assert await key_spent(db, acct.key_id) == 10 * AMOUNT
    assert await reconcile(db.engine) == []


async def test_race_across_two_independent_stores_admits_exactly_ten(
    db: Database, url: str
) -> None:
    """Two "processes", each with its own engine and money store (own writer connection / pool),
    race for one balance: the conditional update in the database decides, not either process."""
    other = Database(url)
    await other.start()
    try:
        acct = await make_account(db, 10 * AMOUNT)
        a, b = Ledger(db.money), Ledger(other.money)
        async with Sampler(db, acct.user_id) as sampler:
            ra, rb = await asyncio.gather(hold_many(a, acct, 100), hold_many(b, acct, 100))
        won_a = [r for r in ra if isinstance(r, Hold)]
        won_b = [r for r in rb if isinstance(r, Hold)]
        lost = [r for r in (*ra, *rb) if not isinstance(r, Hold)]
        assert len(won_a) + len(won_b) == 10
        assert all(isinstance(e, InsufficientBalance) for e in lost), {type(e) for e in lost}
        assert sampler.lowest is not None and sampler.lowest >= 0
        assert await balance_of(db, acct.user_id) == (10 * AMOUNT, 10 * AMOUNT)
        # Settle each hold through the *other* store: settlement is not tied to its opener.
        settled = await asyncio.gather(
            *(b.settle(h, AMOUNT) for h in won_a), *(a.settle(h, AMOUNT) for h in won_b)
        )
        assert all(settled)
        assert await balance_of(db, acct.user_id) == (0, 0)
        assert await reconcile(db.engine) == []
    finally:
        await other.close()


async def test_spend_limit_admits_floor_of_limit_over_amount(db: Database) -> None:
    ledger = Ledger(db.money)
    limit = 3 * AMOUNT + AMOUNT // 2  # room for 3.5 holds -> 3
    acct = await make_account(db, 1_000 * AMOUNT, spend_limit=limit)
    assert acct.key_id is not None
    results = await hold_many(ledger, acct, 40)
    won = [r for r in results if isinstance(r, Hold)]
    lost = [r for r in results if not isinstance(r, Hold)]
    assert len(won) == limit // AMOUNT == 3
    assert all(isinstance(e, SpendLimitExceeded) for e in lost), {type(e) for e in lost}
    assert await key_spent(db, acct.key_id) == 3 * AMOUNT
    assert await balance_of(db, acct.user_id) == (1_000 * AMOUNT, 3 * AMOUNT)
    # Releasing gives the limit back; capturing keeps it used.
    assert await ledger.settle(won[0], 0)
    assert await ledger.settle(won[1], AMOUNT)
    assert await key_spent(db, acct.key_id) == 2 * AMOUNT
    again = await hold_many(ledger, acct, 10)
    assert sum(isinstance(r, Hold) for r in again) == 1
    # A hold without a key (e.g. a console action) is not bound by the key's limit.
    await ledger.hold(user_id=acct.user_id, key_id=None, amount=10 * AMOUNT, purpose="chat")


async def test_revoked_or_expired_key_cannot_hold(db: Database) -> None:
    ledger = Ledger(db.money)
    acct = await make_account(db, 100_000)
    assert acct.key_id is not None
    await ledger.hold(user_id=acct.user_id, key_id=acct.key_id, amount=1_000, purpose="chat")
    assert await AccountRepo(db.engine).revoke_key(acct.key_id)
    with pytest.raises(InvalidApiKey):
        await ledger.hold(user_id=acct.user_id, key_id=acct.key_id, amount=1_000, purpose="chat")
    assert await balance_of(db, acct.user_id) == (100_000, 1_000)
    assert await key_spent(db, acct.key_id) == 1_000

    expired = await make_account(db, 100_000, expires_at=now_ms() - 1_000)
    with pytest.raises(InvalidApiKey):
        await ledger.hold(
            user_id=expired.user_id, key_id=expired.key_id, amount=1_000, purpose="chat"
        )
    assert await balance_of(db, expired.user_id) == (100_000, 0)
    assert await entry_count(db, expired.user_id) == 1  # only the seed credit


async def test_failed_program_leaves_no_partial_writes(db: Database) -> None:
    """A hold refused at the account step must not keep the key-spend update made before it."""
    ledger = Ledger(db.money)
    acct = await make_account(db, 500, spend_limit=10_000)
    assert acct.key_id is not None
    with pytest.raises(InsufficientBalance):
        await ledger.hold(user_id=acct.user_id, key_id=acct.key_id, amount=501, purpose="chat")
    assert await key_spent(db, acct.key_id) == 0
    async with db.engine.connect() as conn:
        n = (
            await conn.execute(
                select(func.count()).select_from(holds).where(holds.c.user_id == acct.user_id)
            )
        ).scalar_one()
    assert n == 0


# -- the schema is the last line of defence ---------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE accounts SET held = balance + 1 WHERE user_id = :u",
        "UPDATE accounts SET balance = held - 1 WHERE user_id = :u",
        "UPDATE accounts SET balance = -5, held = 0 WHERE user_id = :u",
        "UPDATE accounts SET held = -1 WHERE user_id = :u",
    ],
)
async def test_check_constraint_refuses_negative_available_from_raw_sql(
    db: Database, sql: str
) -> None:
    acct = await make_account(db, 1_000, key=False)
    await Ledger(db.money).hold(user_id=acct.user_id, key_id=None, amount=400, purpose="chat")
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        async with db.engine.begin() as conn:
            await conn.execute(text(sql), {"u": acct.user_id})
    assert await balance_of(db, acct.user_id) == (1_000, 400)


async def test_check_constraint_refuses_key_spend_over_its_limit(db: Database) -> None:
    acct = await make_account(db, 1_000, spend_limit=100)
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        async with db.engine.begin() as conn:
            await conn.execute(
                text("UPDATE api_keys SET spent = 101 WHERE id = :k"), {"k": acct.key_id}
            )
