"""A money program and the contract every money store keeps.

A program is a short list of SQL statements that must all apply, or none (a hold: key spend,
account, hold row, ledger entry; a settlement: hold, account, ledger entry, usage record). A store
runs many programs per transaction (group commit), but each program succeeds or fails on its own:
any error in one program, whatever its kind, fails that program alone and never its neighbours in
the batch. Only a failure of the transaction itself (the commit, the connection) fails them all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

MAX_BATCH = 256


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
