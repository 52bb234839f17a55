"""One bad money program never fails its neighbours (DESIGN §8), on SQLite and PostgreSQL.

Each test puts 50 good programs (real holds, each with a probe row) and one failing program into
the money store as ONE batch, then checks that exactly the failing one failed, that it left no
partial writes, and that every good one applied. The failure kinds cover every way a program can
go wrong: a value the driver cannot bind (issue 6: `callback_url` sent as a JSON list), bad SQL,
a missing parameter, a CHECK constraint, a refused condition, a duplicate reference, and a trigger
that aborts (on SQLite with RAISE(ROLLBACK), which ends the whole transaction, not just the
statement)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select, text

from llmage.billing.ledger import Ledger
from llmage.billing.reconcile import reconcile
from llmage.db.engine import Database
from llmage.db.migrate import upgrade
from llmage.db.money import DuplicateRef, Stmt
from llmage.db.repos.accounts import AccountRepo
from llmage.db.repos.tasks import insert_stmt
from llmage.db.tables import holds
from llmage.domain.clock import now_ms
from llmage.domain.errors import InsufficientBalance
from support.backends import BACKENDS, database_url

GOOD = 50
AMOUNT = 1_234
ACCOUNTS = 5  # the good programs take turns over these, ten holds each
PROBE = "INSERT INTO isolation_probe (v) VALUES (:v)"

_SQLITE_PROBE = [
    "CREATE TABLE isolation_probe (v TEXT NOT NULL)",
    # RAISE(ROLLBACK) ends the whole transaction, like disk-full or an interrupt can.
    "CREATE TRIGGER isolation_probe_boom BEFORE INSERT ON isolation_probe"
    " WHEN NEW.v = 'boom' BEGIN SELECT RAISE(ROLLBACK, 'probe refused'); END",
]
_PG_PROBE = [
    "CREATE TABLE isolation_probe (v TEXT NOT NULL)",
    "CREATE FUNCTION isolation_probe_boom() RETURNS trigger AS $$ BEGIN"
    " IF NEW.v = 'boom' THEN RAISE EXCEPTION 'probe refused'; END IF; RETURN NEW; END"
    " $$ LANGUAGE plpgsql",
    "CREATE TRIGGER isolation_probe_boom BEFORE INSERT ON isolation_probe"
    " FOR EACH ROW EXECUTE FUNCTION isolation_probe_boom()",
]


@pytest.fixture(scope="module", params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp(f"isolation-{request.param}")
    with database_url(request.param, tmp) as u:
        upgrade(u)
        yield u


@pytest.fixture
async def db(url: str) -> AsyncIterator[Database]:
    d = Database(url)
    async with d.engine.begin() as conn:
        exists = await conn.run_sync(lambda c: c.dialect.has_table(c, "isolation_probe"))
        if not exists:
            for sql in _SQLITE_PROBE if d.is_sqlite else _PG_PROBE:
                await conn.exec_driver_sql(sql)
    await d.start()
    try:
        yield d
    finally:
        await d.close()


@dataclass
class Scene:
    db: Database
    ledger: Ledger
    good_users: list[int]
    victim: int  # the user whose program fails: nothing of it may remain
    tag: str


async def make_user(db: Database, balance: int) -> int:
    uid = await AccountRepo(db.engine).create_user("u" + secrets.token_hex(6), "not-a-hash")
    await Ledger(db.money).credit(uid, balance, f"seed:{secrets.token_hex(8)}")
    return uid


@pytest.fixture
async def scene(db: Database) -> Scene:
    ledger = Ledger(db.money)
    users = [await make_user(db, 100 * AMOUNT) for _ in range(ACCOUNTS)]
    return Scene(db, ledger, users, await make_user(db, 100 * AMOUNT), secrets.token_hex(4))


def good_program(s: Scene, i: int) -> tuple[int, list[Stmt]]:
    uid = s.good_users[i % ACCOUNTS]
    _, stmts = s.ledger.hold_program(
        user_id=uid, key_id=None, amount=AMOUNT, purpose="chat", ref=f"{s.tag}-{i}"
    )
    return uid, [*stmts, Stmt(PROBE, {"v": f"ok-{s.tag}-{i}"})]


def victim_hold(s: Scene, amount: int = AMOUNT) -> list[Stmt]:
    _, stmts = s.ledger.hold_program(
        user_id=s.victim, key_id=None, amount=amount, purpose="task", ref=f"{s.tag}-victim"
    )
    return stmts


def unbindable(s: Scene) -> list[Stmt]:
    """Issue 6 exactly: a task submit whose callback_url is a JSON list, behind a real hold."""
    hold = victim_hold(s)
    now = now_ms()
    task = insert_stmt(
        {
            "id": "t" + secrets.token_hex(8),
            "user_id": s.victim,
            "key_id": None,
            "kind": "video",
            "llmid": "CrEMkFQfRCmbmopZsCqLj",
            "model": "m",
            "dialect": "llmage",
            "platform": None,
            "params": {"prompt": "x"},
            "hold_id": hold[0].params["hold"],
            "quoted": AMOUNT,
            "idempotency_key": None,
            "request_hash": None,
            "callback_url": ["x"],
            "remix_of": None,
            "now": now,
            "deadline_at": now + 60_000,
        }
    )
    return [*hold, task]


def bad_sql(s: Scene) -> list[Stmt]:
    return [*victim_hold(s), Stmt("UPDATE accounts SET no_such_column = 1 WHERE user_id = :u", {})]


def missing_param(s: Scene) -> list[Stmt]:
    return [*victim_hold(s), Stmt(PROBE, {"w": "the statement names :v"})]


def check_constraint(s: Scene) -> list[Stmt]:
    # A negative hold passes its admission test but drives `held` below zero: the schema says no.
    return victim_hold(s, amount=-AMOUNT)


def refused(s: Scene) -> list[Stmt]:
    return victim_hold(s, amount=101 * AMOUNT)


def duplicate(s: Scene) -> list[Stmt]:
    stmts = victim_hold(s)
    # The ledger ref that the first good program of the batch takes (see the test).
    entry = stmts[-1]
    return [*stmts[:-1], Stmt(entry.sql, {**entry.params, "ref": f"hold:{s.tag}-dup"})]


def trigger(s: Scene) -> list[Stmt]:
    return [*victim_hold(s), Stmt(PROBE, {"v": "boom"})]


KINDS: dict[str, tuple[Callable[[Scene], list[Stmt]], type[Exception]]] = {
    "unbindable value": (unbindable, Exception),
    "bad sql": (bad_sql, Exception),
    "missing parameter": (missing_param, Exception),
    "check constraint": (check_constraint, Exception),
    "refused condition": (refused, InsufficientBalance),
    "duplicate reference": (duplicate, DuplicateRef),
    "trigger abort": (trigger, Exception),
}


@contextlib.contextmanager
def one_batch(db: Database) -> Iterator[None]:
    """Makes everything submitted inside the block land in one batch (after at most one
    earlier batch holding a prefix of it).

    PostgreSQL: the drain loop is a task on this event loop, so nothing runs between
    synchronous submits. SQLite: the writer thread is a real thread, so the database's write
    lock is held from outside meanwhile; the writer waits on it with whatever it took first.
    """
    if not db.is_sqlite:
        yield
        return
    lock = sqlite3.connect(db.url.split("///", 1)[1], isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        lock.execute("ROLLBACK")
        lock.close()


@pytest.mark.parametrize("kind", list(KINDS))
async def test_one_failing_program_fails_alone(scene: Scene, kind: str) -> None:
    s = scene
    build, expected = KINDS[kind]
    bad = build(s)
    if kind == "duplicate reference":
        # Its twin must be a program of the batch: the first good program takes that ref.
        uid, stmts = good_program(s, 0)
        entry = stmts[-2]
        stmts[-2] = Stmt(entry.sql, {**entry.params, "ref": f"hold:{s.tag}-dup"})
        programs = [(uid, stmts)] + [good_program(s, i) for i in range(1, GOOD)]
    else:
        programs = [good_program(s, i) for i in range(GOOD)]
    programs.insert(GOOD // 2, (s.victim, bad))

    with one_batch(s.db):
        futures = [s.db.money.submit(stmts, uid) for uid, stmts in programs]
    results = await asyncio.gather(*futures, return_exceptions=True)

    failed = [i for i, r in enumerate(results) if r is not None]
    assert failed == [GOOD // 2], [repr(r) for r in results if r is not None][:3]
    assert isinstance(results[GOOD // 2], expected), repr(results[GOOD // 2])

    # The failing program left nothing behind; every good one applied whole.
    ledger_users = AccountRepo(s.db.engine)
    assert await ledger_users.balance(s.victim) == (100 * AMOUNT, 0)
    for uid in s.good_users:
        assert await ledger_users.balance(uid) == (100 * AMOUNT, GOOD // ACCOUNTS * AMOUNT)
    async with s.db.engine.connect() as conn:
        victim_holds = await conn.scalar(
            select(func.count()).select_from(holds).where(holds.c.user_id == s.victim)
        )
        probes = await conn.scalar(
            text("SELECT COUNT(*) FROM isolation_probe WHERE v LIKE :p"), {"p": f"ok-{s.tag}-%"}
        )
    assert victim_holds == 0
    assert probes == GOOD
    assert await reconcile(s.db.engine) == []


async def test_every_program_failing_fails_each_alone(scene: Scene) -> None:
    """A batch made only of transaction-ending programs still answers each of them, and the
    store keeps working afterwards."""
    s = scene
    with one_batch(s.db):
        futures = [s.db.money.submit(trigger(s), s.victim) for _ in range(5)]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(r, Exception) for r in results), results
    uid, stmts = good_program(s, 0)
    await s.db.money.run(stmts, uid)
    assert await AccountRepo(s.db.engine).balance(uid) == (100 * AMOUNT, AMOUNT)
    assert await AccountRepo(s.db.engine).balance(s.victim) == (100 * AMOUNT, 0)
