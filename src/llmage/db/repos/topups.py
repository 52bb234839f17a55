"""Top-up orders: one row per payment attempt, `pending` until paid or closed.

Paying is one money program: a conditional update flips the order to `paid` (from `pending`, or
from `closed` when the provider confirms a payment we had given up on), and the same transaction
writes the ledger entry (ref `topup:<out_trade_no>`, unique) and raises the balance. However often
the confirmation arrives, and from whichever path (notify, return page, the pending-order job,
another instance), exactly one program finds the order unpaid: the others change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from llmage.db.money import DuplicateRef, MoneyStore, Stmt
from llmage.db.repos.credits import entry_stmts
from llmage.db.tables import topup_orders, users


@dataclass(frozen=True, slots=True)
class TopupOrder:
    out_trade_no: str
    user_id: int
    amount: int
    method: str
    status: str  # pending | paid | closed
    subject: str
    qr_code: str | None
    trade_no: str | None
    created_at: int
    updated_at: int
    expires_at: int
    paid_at: int | None
    closed_at: int | None
    checks: int
    next_check_at: int


class OrderAlreadyPaid(Exception):
    pass


_MARK_PAID = (
    "UPDATE topup_orders SET status = 'paid', trade_no = :trade_no, paid_at = :now,"
    " updated_at = :now WHERE out_trade_no = :order AND status <> 'paid'"
)


_COLUMNS = tuple(f.name for f in fields(TopupOrder))


def _order(r: object) -> TopupOrder:
    m = r._mapping  # type: ignore[attr-defined]
    return TopupOrder(**{k: m[k] for k in _COLUMNS})


class TopupRepo:
    def __init__(self, engine: AsyncEngine, money: MoneyStore) -> None:
        self._engine = engine
        self._money = money

    async def create(self, order: TopupOrder) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(topup_orders).values(**{k: getattr(order, k) for k in _COLUMNS})
            )

    async def set_qr(self, out_trade_no: str, qr_code: str, now: int) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(topup_orders)
                .where(topup_orders.c.out_trade_no == out_trade_no)
                .values(qr_code=qr_code, updated_at=now)
            )

    async def get(self, out_trade_no: str) -> TopupOrder | None:
        q = select(topup_orders).where(topup_orders.c.out_trade_no == out_trade_no)
        async with self._engine.connect() as conn:
            row = (await conn.execute(q)).first()
        return _order(row) if row else None

    async def page(
        self,
        *,
        user_id: int | None = None,
        status: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> list[tuple[TopupOrder, str]]:
        """Newest first, with each order's username."""
        q = (
            select(topup_orders, users.c.username)
            .join(users, users.c.id == topup_orders.c.user_id)
            .order_by(topup_orders.c.created_at.desc(), topup_orders.c.out_trade_no.desc())
            .offset(offset)
            .limit(limit)
        )
        if user_id is not None:
            q = q.where(topup_orders.c.user_id == user_id)
        if status is not None:
            q = q.where(topup_orders.c.status == status)
        async with self._engine.connect() as conn:
            return [(_order(r), r.username) for r in (await conn.execute(q)).all()]

    async def due(self, now: int, limit: int = 100) -> list[TopupOrder]:
        """Pending orders whose next trade query is due, oldest first."""
        q = (
            select(topup_orders)
            .where(topup_orders.c.status == "pending", topup_orders.c.next_check_at <= now)
            .order_by(topup_orders.c.next_check_at)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [_order(r) for r in (await conn.execute(q)).all()]

    async def reschedule(self, out_trade_no: str, next_check_at: int, now: int) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(topup_orders)
                .where(
                    topup_orders.c.out_trade_no == out_trade_no,
                    topup_orders.c.status == "pending",
                )
                .values(
                    checks=topup_orders.c.checks + 1, next_check_at=next_check_at, updated_at=now
                )
            )

    async def close(self, out_trade_no: str, now: int) -> bool:
        """pending -> closed; False if the order was no longer pending (paid meanwhile)."""
        async with self._engine.begin() as conn:
            res = await conn.execute(
                update(topup_orders)
                .where(
                    topup_orders.c.out_trade_no == out_trade_no,
                    topup_orders.c.status == "pending",
                )
                .values(status="closed", closed_at=now, updated_at=now)
            )
        return bool(res.rowcount)

    async def mark_paid(self, order: TopupOrder, trade_no: str | None, now: int) -> bool:
        """Mark paid and credit the order's amount in one transaction. True if this call did it,
        False if the order had already been paid (by any path, in any process)."""
        p = {"order": order.out_trade_no, "trade_no": trade_no, "now": now}
        stmts = [
            Stmt(_MARK_PAID, p, OrderAlreadyPaid),
            *entry_stmts(
                user_id=order.user_id,
                delta=order.amount,
                kind="topup",
                ref=f"topup:{order.out_trade_no}",
                memo=f"{order.method} {trade_no or ''}".strip(),
                now=now,
            ),
        ]
        try:
            # durable: money coming in must survive a power cut before we answer `success`.
            await self._money.run(stmts, order.user_id, durable=True)
        except (OrderAlreadyPaid, DuplicateRef):
            return False
        return True
