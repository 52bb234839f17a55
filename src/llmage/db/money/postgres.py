"""The money store on PostgreSQL: the same programs as the SQLite writer, through asyncpg.

A queue and one drain loop per process: whatever arrived while the last batch committed forms
the next one. Row locks make it safe across many instances; programs of a batch run in a fixed
order (by account) so two instances' batches never wait on each other in a cycle, and a
deadlock the database still detects is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmage.db.money.program import MAX_BATCH, DuplicateRef, Program, Stmt, deliver, log_unexpected

log = logging.getLogger(__name__)


class _BatchingStore:
    """Queue + one drain loop: whatever arrived while the last batch committed forms the next."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Program] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._drain(), name="money-store")

    async def close(self) -> None:
        if self._task is not None:
            # Let queued programs finish first: they are holds and settlements of real requests.
            assert self._queue is not None
            await self._queue.join()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(
        self, stmts: Sequence[Stmt], lock_order: int = 0, *, durable: bool = False
    ) -> None:
        # PostgreSQL commits are durable as configured on the server; `durable` is for SQLite.
        if self._queue is None:
            raise RuntimeError("money store not started")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(Program(stmts, lock_order, fut))
        await fut

    def submit(self, stmts: Sequence[Stmt], lock_order: int = 0) -> asyncio.Future[None]:
        """Queue without waiting: for settlements that must survive the caller's cancellation."""
        if self._queue is None:
            raise RuntimeError("money store not started")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(Program(stmts, lock_order, fut))
        fut.add_done_callback(log_unexpected)
        return fut

    async def _drain(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            batch = [await queue.get()]
            while len(batch) < MAX_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                results = await self._execute(batch)
            except Exception as exc:  # the whole transaction failed: every program fails with it
                log.exception("money batch failed")
                results = [exc] * len(batch)
            deliver(batch, results)
            for _ in batch:
                queue.task_done()

    async def _execute(self, batch: list[Program]) -> list[Exception | None]:
        raise NotImplementedError


_PARAM = re.compile(r"(?<!:):([a-zA-Z_][a-zA-Z0-9_]*)")


@dataclass(frozen=True, slots=True)
class _PgSql:
    sql: str
    names: tuple[str, ...]


class PostgresMoneyStore(_BatchingStore):
    """Same programs on PostgreSQL via asyncpg. Row locks make it safe across many instances."""

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self._dsn = dsn
        self._pool: Any = None
        self._compiled: dict[str, _PgSql] = {}

    async def start(self) -> None:
        import asyncpg

        self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=4)
        await super().start()

    async def close(self) -> None:
        await super().close()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _compile(self, sql: str) -> _PgSql:
        compiled = self._compiled.get(sql)
        if compiled is None:
            names: list[str] = []

            def repl(m: re.Match[str]) -> str:
                if m.group(1) not in names:
                    names.append(m.group(1))
                return f"${names.index(m.group(1)) + 1}"

            compiled = _PgSql(_PARAM.sub(repl, sql), tuple(names))
            self._compiled[sql] = compiled
        return compiled

    async def _execute(self, batch: list[Program]) -> list[Exception | None]:
        import asyncpg

        # Same lock order in every instance: two batches never wait on each other in a cycle.
        order = sorted(range(len(batch)), key=lambda i: batch[i].lock_order)
        for attempt in range(5):
            results: list[Exception | None] = [None] * len(batch)
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    for i in order:
                        results[i] = await self._run_program(conn, batch[i])
                return results
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                log.warning("money batch deadlock, retry %d", attempt + 1)
                await asyncio.sleep(0.005 * (attempt + 1))
        raise RuntimeError("money batch kept deadlocking")

    async def fetch_one(self, sql: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        c = self._compile(sql)
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(c.sql, *(params[n] for n in c.names))
        return tuple(row) if row is not None else None

    async def _run_program(self, conn: Any, prog: Program) -> Exception | None:
        import asyncpg

        tr = conn.transaction()  # nested: a SAVEPOINT
        await tr.start()
        try:
            for stmt in prog.stmts:
                c = self._compile(stmt.sql)
                status = await conn.execute(c.sql, *(stmt.params[n] for n in c.names))
                if stmt.expect_one is not None and _rowcount(status) != 1:
                    raise stmt.expect_one()
        except asyncpg.UniqueViolationError as exc:
            await tr.rollback()
            return DuplicateRef(str(exc))
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
            raise
        except Exception as exc:
            await tr.rollback()
            return exc
        await tr.commit()
        return None


def _rowcount(status: str) -> int:
    # asyncpg returns the command tag: "UPDATE 1", "INSERT 0 1", "DELETE 0".
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
