"""Executes money programs: short lists of SQL statements that must all apply, or none.

Why not the ORM: the hot path runs one hold and one settle per request, and each is 3–5 statements.
Through SQLAlchemy + aiosqlite every statement is a thread hop and ~100 µs of Python; here a whole
*batch* of programs is one transaction (group commit) and, on SQLite, one hop to a writer thread
where each statement costs microseconds. Every program still runs its own conditional updates in
order inside a SAVEPOINT, so admission stays one atomic `... WHERE available >= :amount` per hold;
batching only shares the commit. PostgreSQL runs the same SQL through asyncpg.

Both stores drain everything queued before `close()` returns: queued programs are holds and
settlements of real requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

MAX_BATCH = 256


class _Abort(Exception):
    """A program's condition failed during an optimistic batch."""


class DuplicateRef(Exception):
    """A unique reference (ledger ref, hold id) already exists: the operation was done before."""


@dataclass(frozen=True, slots=True)
class Stmt:
    """One statement with `:name` parameters. If `expect_one` is set and the statement does not
    change exactly one row, the program aborts (rolled back) with `expect_one()` raised."""

    sql: str
    params: Mapping[str, Any]
    expect_one: Callable[[], Exception] | None = None


@dataclass(slots=True)
class Program:
    stmts: Sequence[Stmt]
    lock_order: int = 0  # PostgreSQL: programs of a batch run sorted by this to avoid deadlocks
    future: asyncio.Future[None] | None = field(default=None, repr=False)
    durable: bool = False  # SQLite: commit this batch with synchronous=FULL whatever the default


class MoneyStore(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def run(
        self, stmts: Sequence[Stmt], lock_order: int = 0, *, durable: bool = False
    ) -> None: ...
    def submit(self, stmts: Sequence[Stmt], lock_order: int = 0) -> asyncio.Future[None]: ...
    async def fetch_one(self, sql: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """A single-row read in the same SQL dialect (rare paths only)."""


def deliver(batch: list[Program], results: list[Exception | None]) -> None:
    """Each program's outcome to whoever waits for it."""
    for prog, result in zip(batch, results, strict=True):
        fut = prog.future
        if fut is not None and not fut.done():
            if result is None:
                fut.set_result(None)
            else:
                fut.set_exception(result)


def log_unexpected(fut: asyncio.Future[None]) -> None:
    exc = None if fut.cancelled() else fut.exception()
    if exc is not None and not isinstance(exc, DuplicateRef):
        log.error("background money program failed: %r", exc)


class SqliteMoneyStore:
    """One writer thread owning one SQLite connection.

    Requests put programs on a SimpleQueue (a C-level put, no executor, no task); the thread
    takes everything queued, runs it as one transaction and hands all results back to the event
    loop with a single call_soon_threadsafe. Whatever arrives during a commit forms the next
    batch, so the commit cost is shared under load and a lone request waits for one commit only.
    The fsync of `synchronous=FULL` happens in this thread with the GIL released: the event loop
    never blocks on the disk.
    """

    def __init__(self, path: str, synchronous: str = "FULL") -> None:
        self._path = path
        self._synchronous = synchronous
        self._queue: queue.SimpleQueue[Program | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = 0
        self._idle: asyncio.Event | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Event()
        self._idle.set()
        ready: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._writer, args=(ready,), name="sqlite-writer", daemon=True
        )
        self._thread.start()
        await ready

    async def close(self) -> None:
        if self._thread is None:
            return
        assert self._idle is not None
        await self._idle.wait()  # queued holds and settlements of real requests finish first
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    def _enqueue(
        self, stmts: Sequence[Stmt], lock_order: int, durable: bool = False
    ) -> asyncio.Future[None]:
        if self._thread is None or self._loop is None or self._idle is None:
            raise RuntimeError("money store not started")
        fut: asyncio.Future[None] = self._loop.create_future()
        self._pending += 1
        self._idle.clear()
        self._queue.put(Program(stmts, lock_order, fut, durable))
        return fut

    async def run(
        self, stmts: Sequence[Stmt], lock_order: int = 0, *, durable: bool = False
    ) -> None:
        await self._enqueue(stmts, lock_order, durable)

    def submit(self, stmts: Sequence[Stmt], lock_order: int = 0) -> asyncio.Future[None]:
        fut = self._enqueue(stmts, lock_order)
        fut.add_done_callback(log_unexpected)
        return fut

    async def fetch_one(self, sql: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        def read() -> tuple[Any, ...] | None:
            conn = sqlite3.connect(self._path)
            try:
                row: tuple[Any, ...] | None = conn.execute(sql, dict(params)).fetchone()
                return row
            finally:
                conn.close()

        return await asyncio.to_thread(read)

    def _resolve(self, batch: list[Program], results: list[Exception | None]) -> None:
        deliver(batch, results)
        self._pending -= len(batch)
        if self._pending == 0 and self._idle is not None:
            self._idle.set()

    def _writer(self, ready: asyncio.Future[None]) -> None:
        loop = self._loop
        assert loop is not None
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA foreign_keys=ON")
        except Exception as exc:
            loop.call_soon_threadsafe(ready.set_exception, exc)
            return
        loop.call_soon_threadsafe(ready.set_result, None)
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            # Money coming in (top-ups) must survive a power cut; per-request holds and
            # settlements use the configured level (WAL + NORMAL survives process crashes).
            full = self._synchronous.upper() != "FULL" and any(p.durable for p in batch)
            if full:
                conn.execute("PRAGMA synchronous=FULL")
            try:
                results = self._execute(conn, batch)
            except Exception as exc:  # the transaction failed: every program fails with it
                log.exception("money batch failed")
                results = [exc] * len(batch)
            if full:
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
            loop.call_soon_threadsafe(self._resolve, batch, results)
        conn.close()

    @classmethod
    def _execute(cls, conn: sqlite3.Connection, batch: list[Program]) -> list[Exception | None]:
        """Optimistically, the whole batch in one transaction with no per-program savepoints
        (they cost a third of the writer's statements). If any program fails, that attempt is
        rolled back entirely and the batch runs again, each program in its own savepoint."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            for prog in batch:
                for stmt in prog.stmts:
                    cur = conn.execute(stmt.sql, stmt.params)
                    if stmt.expect_one is not None and cur.rowcount != 1:
                        raise _Abort
            conn.execute("COMMIT")
            return [None] * len(batch)
        except (_Abort, sqlite3.IntegrityError):
            conn.execute("ROLLBACK")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return cls._execute_careful(conn, batch)

    @staticmethod
    def _execute_careful(conn: sqlite3.Connection, batch: list[Program]) -> list[Exception | None]:
        results: list[Exception | None] = []
        # IMMEDIATE takes the write lock up front so a concurrent CLI writer waits (busy_timeout)
        # instead of failing mid-transaction.
        conn.execute("BEGIN IMMEDIATE")
        try:
            for prog in batch:
                conn.execute("SAVEPOINT p")
                try:
                    for stmt in prog.stmts:
                        cur = conn.execute(stmt.sql, stmt.params)
                        if stmt.expect_one is not None and cur.rowcount != 1:
                            raise stmt.expect_one()
                except sqlite3.IntegrityError as exc:
                    conn.execute("ROLLBACK TO p")
                    results.append(_integrity(exc))
                except Exception as exc:
                    conn.execute("ROLLBACK TO p")
                    results.append(exc)
                else:
                    results.append(None)
                conn.execute("RELEASE p")
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return results


def _integrity(exc: Exception) -> Exception:
    text = str(exc).lower()
    if "unique" in text or "duplicate" in text:
        return DuplicateRef(str(exc))
    return exc


def now_ms() -> int:
    return int(time.time() * 1000)


def make_money_store(database_url: str, sqlite_synchronous: str) -> MoneyStore:
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[1]
        return SqliteMoneyStore(path, sqlite_synchronous)
    from llmage.db.money_pg import PostgresMoneyStore  # imports this module: keep it lazy

    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    return PostgresMoneyStore(dsn)
