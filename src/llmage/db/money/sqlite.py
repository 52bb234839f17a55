"""The money store on SQLite: one writer thread, one connection, group commit.

Why not the ORM: the hot path runs one hold and one settle per request, and each is 3–5 statements.
Through SQLAlchemy + aiosqlite every statement is a thread hop and ~100 µs of Python; here a whole
*batch* of programs is one transaction (group commit) and one hop to a writer thread where each
statement costs microseconds. Every program still runs its own conditional updates in order, so
admission stays one atomic `... WHERE available >= :amount` per hold; batching only shares the
commit.

The store drains everything queued before `close()` returns: queued programs are holds and
settlements of real requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from llmage.db.money.program import MAX_BATCH, DuplicateRef, Program, Stmt, deliver, log_unexpected

log = logging.getLogger(__name__)


class _Abort(Exception):
    """A program's condition failed during an optimistic batch."""


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
        (they cost a third of the writer's statements). If anything in any program fails (a
        condition, a constraint, a value the driver cannot bind, bad SQL: any error at all), that
        attempt is rolled back entirely and the batch runs again, each program on its own."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            for prog in batch:
                for stmt in prog.stmts:
                    cur = conn.execute(stmt.sql, stmt.params)
                    if stmt.expect_one is not None and cur.rowcount != 1:
                        raise _Abort
        except Exception:
            with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
                conn.execute("ROLLBACK")
            return cls._execute_careful(conn, batch)
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return [None] * len(batch)

    @staticmethod
    def _execute_careful(conn: sqlite3.Connection, batch: list[Program]) -> list[Exception | None]:
        """Each program in its own savepoint: an error rolls back that program alone.

        A few errors (disk full, I/O, an interrupt, a trigger's RAISE(ROLLBACK)) make SQLite end
        the whole transaction, not just the failing statement, taking the programs before it with
        it. Then the failing program keeps its error and the pass starts over without it; every
        pass removes one program, so this ends. Only a failing BEGIN or COMMIT fails them all.
        """
        failed: dict[int, Exception] = {}
        while True:
            # IMMEDIATE takes the write lock up front so a concurrent CLI writer waits
            # (busy_timeout) instead of failing mid-transaction.
            conn.execute("BEGIN IMMEDIATE")
            try:
                ended = False
                for i, prog in enumerate(batch):
                    if i in failed:
                        continue
                    conn.execute("SAVEPOINT p")
                    try:
                        for stmt in prog.stmts:
                            cur = conn.execute(stmt.sql, stmt.params)
                            if stmt.expect_one is not None and cur.rowcount != 1:
                                raise stmt.expect_one()
                    except Exception as exc:
                        failed[i] = _outcome(exc)
                        if not conn.in_transaction:
                            ended = True
                            break
                        conn.execute("ROLLBACK TO p")
                    conn.execute("RELEASE p")
                if ended:
                    log.warning("money program ended its transaction: %r", failed[i])
                    continue
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            return [failed.get(i) for i in range(len(batch))]


def _outcome(exc: Exception) -> Exception:
    """What the waiting caller sees: a unique violation means "done before"."""
    if isinstance(exc, sqlite3.IntegrityError):
        text = str(exc).lower()
        if "unique" in text or "duplicate" in text:
            return DuplicateRef(str(exc))
    return exc
