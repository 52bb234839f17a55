"""Redeem codes: batches created by admins, each code single use, stored as SHA-256 only.

Redeeming is one money program: a conditional update claims the code (still unredeemed, not
expired at this instant), and the same transaction writes the ledger entry (ref
`redeem:<code id>`, unique) and raises the balance. A hundred concurrent redemptions of one code
run that update one after another on its row: one finds it free, the rest change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from llmage.db.money import DuplicateRef, MoneyStore, Stmt
from llmage.db.repos.credits import entry_stmts
from llmage.db.tables import redeem_batches, redeem_codes, users


@dataclass(frozen=True, slots=True)
class RedeemCode:
    id: int
    batch_id: int
    prefix: str
    amount: int
    expires_at: int | None
    redeemed_by: int | None
    redeemed_at: int | None
    created_at: int


@dataclass(frozen=True, slots=True)
class RedeemBatch:
    id: int
    note: str
    amount: int
    count: int
    redeemed: int
    expires_at: int | None
    created_by: int
    created_at: int


@dataclass(frozen=True, slots=True)
class CodeListing:
    code: RedeemCode
    note: str
    redeemed_by_name: str | None
    status: str  # unused | redeemed | expired, at the time of listing


class CodeTaken(Exception):
    """Redeemed by someone else first, or expired, between the look-up and the claim."""


_CLAIM = (
    "UPDATE redeem_codes SET redeemed_by = :user, redeemed_at = :now WHERE id = :code"
    " AND redeemed_at IS NULL AND (expires_at IS NULL OR expires_at > :now)"
)


def _code(r: object) -> RedeemCode:
    m = r._mapping  # type: ignore[attr-defined]
    return RedeemCode(
        id=m["id"],
        batch_id=m["batch_id"],
        prefix=m["prefix"],
        amount=m["amount"],
        expires_at=m["expires_at"],
        redeemed_by=m["redeemed_by"],
        redeemed_at=m["redeemed_at"],
        created_at=m["created_at"],
    )


def _status(code: RedeemCode, now: int) -> str:
    if code.redeemed_at is not None:
        return "redeemed"
    if code.expires_at is not None and code.expires_at <= now:
        return "expired"
    return "unused"


class RedeemRepo:
    def __init__(self, engine: AsyncEngine, money: MoneyStore) -> None:
        self._engine = engine
        self._money = money

    async def create_batch(
        self,
        *,
        note: str,
        amount: int,
        expires_at: int | None,
        created_by: int,
        codes: list[tuple[str, str]],  # (sha256 hex, display prefix)
        now: int,
    ) -> int:
        async with self._engine.begin() as conn:
            res = await conn.execute(
                insert(redeem_batches)
                .values(
                    note=note,
                    amount=amount,
                    count=len(codes),
                    expires_at=expires_at,
                    created_by=created_by,
                    created_at=now,
                )
                .returning(redeem_batches.c.id)
            )
            batch_id = int(res.scalar_one())
            await conn.execute(
                insert(redeem_codes),
                [
                    {
                        "batch_id": batch_id,
                        "code_hash": digest,
                        "prefix": prefix,
                        "amount": amount,
                        "expires_at": expires_at,
                        "created_at": now,
                    }
                    for digest, prefix in codes
                ],
            )
        return batch_id

    async def by_hash(self, code_hash: str) -> RedeemCode | None:
        q = select(redeem_codes).where(redeem_codes.c.code_hash == code_hash)
        async with self._engine.connect() as conn:
            row = (await conn.execute(q)).first()
        return _code(row) if row else None

    async def redeem(self, code: RedeemCode, user_id: int, now: int) -> bool:
        """Claim the code and credit its amount at once; False if it was taken or had expired."""
        stmts = [
            Stmt(_CLAIM, {"user": user_id, "now": now, "code": code.id}, CodeTaken),
            *entry_stmts(
                user_id=user_id,
                delta=code.amount,
                kind="redeem",
                ref=f"redeem:{code.id}",
                memo=f"redeem code {code.prefix}",
                now=now,
            ),
        ]
        try:
            await self._money.run(stmts, user_id, durable=True)
        except (CodeTaken, DuplicateRef):
            return False
        return True

    async def list_codes(
        self,
        *,
        batch_id: int | None,
        status: str | None,  # unused | redeemed | expired
        now: int,
        offset: int,
        limit: int,
    ) -> list[CodeListing]:
        q = (
            select(redeem_codes, redeem_batches.c.note, users.c.username)
            .join(redeem_batches, redeem_batches.c.id == redeem_codes.c.batch_id)
            .outerjoin(users, users.c.id == redeem_codes.c.redeemed_by)
            .order_by(redeem_codes.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
        if batch_id is not None:
            q = q.where(redeem_codes.c.batch_id == batch_id)
        live = (redeem_codes.c.expires_at.is_(None)) | (redeem_codes.c.expires_at > now)
        if status == "redeemed":
            q = q.where(redeem_codes.c.redeemed_at.is_not(None))
        elif status == "unused":
            q = q.where(redeem_codes.c.redeemed_at.is_(None), live)
        elif status == "expired":
            q = q.where(redeem_codes.c.redeemed_at.is_(None), ~live)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [CodeListing(_code(r), r.note, r.username, _status(_code(r), now)) for r in rows]

    async def list_batches(self, *, offset: int, limit: int) -> list[RedeemBatch]:
        redeemed = (
            select(func.count())
            .where(
                redeem_codes.c.batch_id == redeem_batches.c.id,
                redeem_codes.c.redeemed_at.is_not(None),
            )
            .scalar_subquery()
        )
        q = (
            select(redeem_batches, redeemed.label("redeemed"))
            .order_by(redeem_batches.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [
            RedeemBatch(
                id=r.id,
                note=r.note,
                amount=r.amount,
                count=r._mapping["count"],
                redeemed=int(r.redeemed),
                expires_at=r.expires_at,
                created_by=r.created_by,
                created_at=r.created_at,
            )
            for r in rows
        ]
