"""Money that moves outside holds: top-ups, redeemed codes and an admin's manual adjustments.

Each is one ledger entry plus one account update in the same program, the entry's `ref` unique,
so whatever repeats the operation (a notify delivered twice, two instances, a retried click)
credits once. A debit is admitted by one conditional update (`balance - held >= amount`): it can
never take the available balance below zero, and the schema's own check backs that up.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from llmage.db.money import DuplicateRef, MoneyStore, Stmt
from llmage.domain.clock import now_ms
from llmage.domain.errors import Conflict, NotFound

_INSERT_ENTRY = (
    "INSERT INTO ledger_entries (user_id, kind, delta_balance, delta_held, ref, hold_id, memo,"
    " actor_id, created_at) VALUES (:user, :kind, :delta, 0, :ref, NULL, :memo, :actor, :now)"
)
_CREDIT = "UPDATE accounts SET balance = balance + :delta WHERE user_id = :user"
_DEBIT = (
    "UPDATE accounts SET balance = balance + :delta"
    " WHERE user_id = :user AND balance - held >= :debit"
)


class NoSuchAccount(NotFound):
    def __init__(self) -> None:
        super().__init__("no such user", param="user_id")


class DebitExceedsAvailable(Conflict):
    code = "insufficient_balance"

    def __init__(self) -> None:
        super().__init__(
            "the debit is larger than the user's available balance (balance minus holds)",
            param="amount",
        )


def entry_stmts(
    *,
    user_id: int,
    delta: int,
    kind: str,
    ref: str,
    memo: str | None,
    actor_id: int | None = None,
    now: int | None = None,
) -> list[Stmt]:
    """The ledger entry and the balance change of one credit (delta > 0) or debit (delta < 0)."""
    p = {
        "user": user_id,
        "delta": delta,
        "debit": -delta,
        "kind": kind,
        "ref": ref,
        "memo": memo,
        "actor": actor_id,
        "now": now if now is not None else now_ms(),
    }
    if delta >= 0:
        update = Stmt(_CREDIT, p, NoSuchAccount)
    else:
        # A missing account also fails this update: the service checks the user exists first.
        update = Stmt(_DEBIT, p, DebitExceedsAvailable)
    return [Stmt(_INSERT_ENTRY, p), update]


class AdjustmentRepo:
    """An admin's manual credit or debit, with the reason and the admin in the entry."""

    def __init__(self, engine: AsyncEngine, money: MoneyStore) -> None:
        self._engine = engine
        self._money = money

    async def adjust(
        self, user_id: int, delta: int, *, ref: str, reason: str, actor_id: int
    ) -> bool:
        """False if `ref` was applied before (a retried request changes nothing)."""
        stmts = entry_stmts(
            user_id=user_id, delta=delta, kind="adjust", ref=ref, memo=reason, actor_id=actor_id
        )
        try:
            await self._money.run(stmts, user_id, durable=True)
        except DuplicateRef:
            return False
        return True
