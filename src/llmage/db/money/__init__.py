"""The money store: executes money programs (short lists of SQL statements that must all apply,
or none), many per transaction, each isolated from the others.

`program` holds the program type and the store contract, `sqlite` and `postgres` the two stores,
`ledger` the ledger's programs (hold, settle, credit) and `invariants` the reconcile checks. The
rest of the code imports from here.
"""

from __future__ import annotations

from llmage.db.money.program import DuplicateRef, MoneyStore, Program, Stmt
from llmage.db.money.sqlite import SqliteMoneyStore

__all__ = ["DuplicateRef", "MoneyStore", "Program", "Stmt", "make_money_store"]


def make_money_store(database_url: str, sqlite_synchronous: str) -> MoneyStore:
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[1]
        return SqliteMoneyStore(path, sqlite_synchronous)
    from llmage.db.money.postgres import PostgresMoneyStore  # asyncpg only when it is used

    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    return PostgresMoneyStore(dsn)
