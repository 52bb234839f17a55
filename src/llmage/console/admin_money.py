"""Admin money routes: manual credit and debit, redeem-code batches, every top-up order.

Every route here depends on `require_admin` (an admin session with CSRF, or an admin's API key).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query
from pydantic import AwareDatetime, BaseModel, Field
from starlette.responses import Response

from llmage.console.amounts import AmountIn, amount_in
from llmage.console.models import Money, Text, _Request, errors, iso
from llmage.console.payments import OrderBase, order_fields
from llmage.console.session import AdminUser, console_platform
from llmage.services.finance import page_window
from llmage.services.platform import Platform
from llmage.services.redeem import MAX_BATCH

router = APIRouter(tags=["Console: admin money"])
PlatformDep = Annotated[Platform, Depends(console_platform)]
PageNo = Annotated[int, Query(ge=1)]
PageSize = Annotated[int, Query(ge=1, le=200)]


class AdjustIn(_Request):
    amount: AmountIn = Field(description="Currency units, above 0")
    reason: Text = Field(min_length=1, max_length=500, description="Kept in the ledger entry")


class AdjustOut(BaseModel):
    applied: bool = Field(description="False: this Idempotency-Key was applied before")
    user_id: int
    balance: Money
    held: Money
    available: Money


class BatchIn(_Request):
    count: int = Field(ge=1, le=MAX_BATCH)
    amount: AmountIn = Field(description="Per code, currency units")
    expires_at: AwareDatetime | None = Field(
        None, description="ISO 8601 with a time zone, e.g. 2026-01-31T23:59:59+08:00"
    )
    expires_in_days: float | None = Field(None, gt=0, le=3650, description="Instead of expires_at")
    note: Text = Field("", max_length=200)


class BatchOut(BaseModel):
    batch_id: int
    amount: Money
    count: int
    expires_at: str | None
    codes: list[str] = Field(description="Shown this once: only their hashes are stored")


class CodeOut(BaseModel):
    id: int
    batch_id: int
    note: str
    prefix: str
    amount: Money
    status: Literal["unused", "redeemed", "expired"]
    redeemed_by: int | None
    redeemed_by_name: str | None
    redeemed_at: str | None
    expires_at: str | None
    created_at: str


class CodePage(BaseModel):
    items: list[CodeOut]
    page: int
    page_size: int
    has_more: bool


class BatchSummary(BaseModel):
    id: int
    note: str
    amount: Money
    count: int
    redeemed: int
    expires_at: str | None
    created_by: int
    created_at: str


class BatchPage(BaseModel):
    items: list[BatchSummary]
    page: int
    page_size: int
    has_more: bool


class OrderOut(OrderBase):
    user_id: int
    username: str


class OrderPage(BaseModel):
    items: list[OrderOut]
    page: int
    page_size: int
    has_more: bool


async def _adjust(
    p: Platform,
    admin_id: int,
    user_id: int,
    body: AdjustIn,
    debit: bool,
    idempotency_key: str | None,
) -> AdjustOut:
    done = await p.adjustments.adjust(
        admin_id=admin_id,
        user_id=user_id,
        amount=amount_in(body.amount),
        debit=debit,
        reason=body.reason,
        idempotency_key=idempotency_key,
    )
    available = done.balance - done.held
    return AdjustOut(
        applied=done.applied,
        user_id=user_id,
        balance=Money.of(done.balance),
        held=Money.of(done.held),
        available=Money.of(available),
    )


IdemKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="Retries with the same key apply once"),
]


@router.post(
    "/api/admin/users/{user_id}/credit",
    summary="Credit a user's balance, with a reason",
    response_model=AdjustOut,
    responses=errors(400, 401, 403, 404),
)
async def credit_user(
    user_id: int, body: AdjustIn, admin: AdminUser, p: PlatformDep, key: IdemKey = None
) -> AdjustOut:
    return await _adjust(p, admin.user_id, user_id, body, False, key)


@router.post(
    "/api/admin/users/{user_id}/debit",
    summary="Debit a user's balance, with a reason (never below the available balance)",
    response_model=AdjustOut,
    responses=errors(400, 401, 403, 404, 409),
)
async def debit_user(
    user_id: int, body: AdjustIn, admin: AdminUser, p: PlatformDep, key: IdemKey = None
) -> AdjustOut:
    return await _adjust(p, admin.user_id, user_id, body, True, key)


@router.post(
    "/api/admin/redeem-codes",
    summary="Create a batch of single-use redeem codes (the codes are shown this once)",
    response_model=BatchOut,
    responses=errors(400, 401, 403),
)
async def create_codes(
    body: BatchIn, admin: AdminUser, p: PlatformDep, response: Response
) -> BatchOut:
    batch = await p.redeem.create_batch(
        admin_id=admin.user_id,
        count=body.count,
        amount=amount_in(body.amount),
        expires_at=int(body.expires_at.timestamp() * 1000) if body.expires_at else None,
        expires_in_days=body.expires_in_days,
        note=body.note,
    )
    response.headers["Cache-Control"] = "no-store"
    return BatchOut(
        batch_id=batch.id,
        amount=Money.of(batch.amount),
        count=len(batch.codes),
        expires_at=iso(batch.expires_at),
        codes=batch.codes,
    )


@router.get(
    "/api/admin/redeem-codes",
    summary="Redeem codes (prefixes only), newest first",
    response_model=CodePage,
    responses=errors(400, 401, 403),
)
async def list_codes(
    admin: AdminUser,
    p: PlatformDep,
    batch_id: Annotated[int | None, Query()] = None,
    status: Annotated[Literal["unused", "redeemed", "expired"] | None, Query()] = None,
    page: PageNo = 1,
    page_size: PageSize = 50,
) -> CodePage:
    offset, size = page_window(page, page_size)
    rows = await p.redeem.codes(batch_id=batch_id, status=status, offset=offset, limit=size + 1)
    items = []
    for row in rows[:size]:
        c = row.code
        items.append(
            CodeOut(
                id=c.id,
                batch_id=c.batch_id,
                note=row.note,
                prefix=c.prefix,
                amount=Money.of(c.amount),
                status=row.status,
                redeemed_by=c.redeemed_by,
                redeemed_by_name=row.redeemed_by_name,
                redeemed_at=iso(c.redeemed_at),
                expires_at=iso(c.expires_at),
                created_at=iso(c.created_at) or "",
            )
        )
    return CodePage(items=items, page=page, page_size=size, has_more=len(rows) > size)


@router.get(
    "/api/admin/redeem-batches",
    summary="Redeem-code batches with how many codes were redeemed",
    response_model=BatchPage,
    responses=errors(400, 401, 403),
)
async def list_batches(
    admin: AdminUser, p: PlatformDep, page: PageNo = 1, page_size: PageSize = 50
) -> BatchPage:
    offset, size = page_window(page, page_size)
    rows = await p.redeem.batches(offset=offset, limit=size + 1)
    return BatchPage(
        items=[
            BatchSummary(
                id=b.id,
                note=b.note,
                amount=Money.of(b.amount),
                count=b.count,
                redeemed=b.redeemed,
                expires_at=iso(b.expires_at),
                created_by=b.created_by,
                created_at=iso(b.created_at) or "",
            )
            for b in rows[:size]
        ],
        page=page,
        page_size=size,
        has_more=len(rows) > size,
    )


@router.get(
    "/api/admin/orders",
    summary="Every user's top-up orders, newest first",
    response_model=OrderPage,
    responses=errors(400, 401, 403),
)
async def list_orders(
    admin: AdminUser,
    p: PlatformDep,
    status: Annotated[Literal["pending", "paid", "closed"] | None, Query()] = None,
    user_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    page: PageNo = 1,
    page_size: PageSize = 50,
) -> OrderPage:
    offset, size = page_window(page, page_size)
    rows = await p.topups.page(user_id=user_id, status=status, offset=offset, limit=size + 1)
    items = [
        OrderOut.model_validate(
            {**order_fields(order), "user_id": order.user_id, "username": username}
        )
        for order, username in rows[:size]
    ]
    return OrderPage(items=items, page=page, page_size=size, has_more=len(rows) > size)
