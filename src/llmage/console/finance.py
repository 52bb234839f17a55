"""Finance routes: the caller's ledger, usage (JSON or CSV) and a summary for the dashboard."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.responses import StreamingResponse

from llmage.console.models import Money, errors, iso
from llmage.console.session import CurrentUser, console_platform
from llmage.domain.money import format_amount
from llmage.services.finance import LEDGER_KINDS, UsageFilter
from llmage.services.platform import Platform

router = APIRouter(tags=["Console: finance"])
PlatformDep = Annotated[Platform, Depends(console_platform)]
PageNo = Annotated[int, Query(ge=1, le=1_000_000)]
PageSize = Annotated[int, Query(ge=1, le=200)]
DateFrom = Annotated[
    str | None, Query(alias="from", description="First day, YYYY-MM-DD (server's time zone)")
]
DateTo = Annotated[str | None, Query(alias="to", description="Last day, YYYY-MM-DD, inclusive")]

# What each ledger kind means to a person reading their statement.
CATEGORY = {
    "topup": "topup",
    "redeem": "topup",
    "capture": "charge",
    "refund": "refund",
    "adjust": "adjustment",
    "hold": "hold",
    "release": "release",
}


class EntryOut(BaseModel):
    id: int
    kind: str = Field(description=f"One of {', '.join(LEDGER_KINDS)}")
    category: str = Field(description="topup, charge, refund, adjustment, hold or release")
    amount: Money = Field(description="Change to the balance (negative for a charge)")
    held_change: Money = Field(description="Change to the amount on hold")
    ref: str
    memo: str | None
    by_admin: int | None = Field(description="The admin behind a manual adjustment")
    created_at: str


class EntryPage(BaseModel):
    items: list[EntryOut]
    page: int
    page_size: int
    has_more: bool


class UsageOut(BaseModel):
    id: str = Field(description="llmusageid of a chat request, or a task id")
    kind: Literal["chat", "video", "image"]
    model: str
    llmid: str | None
    status: Literal["succeeded", "failed", "cancelled", "running"]
    amount: Money = Field(description="Charged; for a running task, what it holds")
    prompt_tokens: int | None
    completion_tokens: int | None
    detail: str | None = Field(description="A task's usage (JSON text)")
    error: str | None
    dialect: str
    key_id: int | None
    created_at: str
    finished_at: str | None


class UsagePage(BaseModel):
    items: list[UsageOut]
    page: int
    page_size: int
    has_more: bool


class HoldOut(BaseModel):
    id: str
    amount: Money
    purpose: str = Field(description="chat or task")
    ref: str | None = Field(description="The request's llmusageid or the task id")
    created_at: str


class DayOut(BaseModel):
    date: str = Field(description="YYYY-MM-DD in the server's time zone")
    spend: Money = Field(description="Charges minus refunds")
    topup: Money = Field(description="Top-ups and redeemed codes")
    adjust: Money = Field(description="Manual adjustments, net")


class SummaryOut(BaseModel):
    currency: str
    balance: Money
    held: Money
    available: Money
    open_holds: list[HoldOut]
    days: list[DayOut] = Field(description="One entry per day, oldest first, for the chart")


@router.get(
    "/api/ledger",
    summary="My ledger entries, newest first",
    response_model=EntryPage,
    responses=errors(400, 401),
)
async def ledger(
    user: CurrentUser,
    p: PlatformDep,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    kind: Annotated[str | None, Query(description="Comma-separated ledger kinds")] = None,
    page: PageNo = 1,
    page_size: PageSize = 50,
) -> EntryPage:
    got = await p.finance.ledger(
        user.user_id,
        kinds=kind,
        date_from=date_from,
        date_to=date_to,
        page=page,
        page_size=page_size,
    )
    return EntryPage(
        items=[
            EntryOut(
                id=e.id,
                kind=e.kind,
                category=CATEGORY.get(e.kind, e.kind),
                amount=Money.of(e.delta_balance),
                held_change=Money.of(e.delta_held),
                ref=e.ref,
                memo=e.memo,
                by_admin=e.actor_id,
                created_at=iso(e.created_at) or "",
            )
            for e in got.items
        ],
        page=got.page,
        page_size=got.page_size,
        has_more=got.has_more,
    )


CSV_COLUMNS = (
    "id",
    "kind",
    "model",
    "llmid",
    "status",
    "amount",
    "amount_micros",
    "prompt_tokens",
    "completion_tokens",
    "detail",
    "error",
    "dialect",
    "key_id",
    "created_at",
    "finished_at",
)


def csv_cell(value: object) -> str:
    """Free text that a spreadsheet would run as a formula is prefixed with a quote (CSV
    injection). Our own ids are not passed through here: they cannot hold a formula and must stay
    exact for scripts."""
    if value is None:
        return ""
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not isinstance(value, int):
        return "'" + text
    return text


@router.get(
    "/api/usage",
    summary="My usage: chat requests and generation tasks, newest first",
    description="`format=csv` streams every matching row (up to 100000) as a CSV file.",
    response_model=UsagePage,
    responses={200: {"content": {"text/csv": {}}}, **errors(400, 401)},
)
async def usage(
    user: CurrentUser,
    p: PlatformDep,
    model: Annotated[str | None, Query(max_length=128)] = None,
    kind: Annotated[Literal["chat", "video", "image"] | None, Query()] = None,
    status: Annotated[
        Literal["succeeded", "failed", "cancelled", "running"] | None, Query()
    ] = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    page: PageNo = 1,
    page_size: PageSize = 50,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> UsagePage | StreamingResponse:
    f = p.finance.usage_filter(
        model=model, kind=kind, status=status, date_from=date_from, date_to=date_to
    )
    if format == "csv":
        return StreamingResponse(
            _csv(p, user.user_id, f),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": 'attachment; filename="llmage-usage.csv"',
                "Cache-Control": "no-store",
            },
        )
    got = await p.finance.usage(user.user_id, f, page=page, page_size=page_size)
    return UsagePage(
        items=[
            UsageOut(
                id=u.id,
                kind=u.kind,
                model=u.model,
                llmid=u.llmid,
                status=u.status,
                amount=Money.of(u.amount),
                prompt_tokens=u.prompt_tokens,
                completion_tokens=u.completion_tokens,
                detail=u.detail,
                error=u.error,
                dialect=u.dialect,
                key_id=u.key_id,
                created_at=iso(u.created_at) or "",
                finished_at=iso(u.finished_at),
            )
            for u in got.items
        ],
        page=got.page,
        page_size=got.page_size,
        has_more=got.has_more,
    )


async def _csv(p: Platform, user_id: int, f: UsageFilter) -> AsyncIterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    yield "\ufeff" + buf.getvalue()  # BOM: spreadsheets then read the UTF-8 (Chinese) right
    async for rows in p.finance.usage_chunks(user_id, f):
        buf.seek(0)
        buf.truncate()
        for u in rows:
            writer.writerow(
                [
                    u.id,  # ours, from [A-Za-z0-9_-]: kept exact (it may start with '-')
                    u.kind,
                    csv_cell(u.model),
                    u.llmid or "",
                    u.status,
                    format_amount(u.amount),
                    u.amount,
                    csv_cell(u.prompt_tokens),
                    csv_cell(u.completion_tokens),
                    csv_cell(u.detail),
                    csv_cell(u.error),
                    csv_cell(u.dialect),
                    csv_cell(u.key_id),
                    iso(u.created_at),
                    iso(u.finished_at),
                ]
            )
        yield buf.getvalue()


@router.get(
    "/api/finance/summary",
    summary="Balance, open holds and daily totals for the last N days",
    response_model=SummaryOut,
    responses=errors(400, 401),
)
async def summary(
    user: CurrentUser,
    p: PlatformDep,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> SummaryOut:
    s = await p.finance.summary(user.user_id, days)
    available = s.balance - s.held
    return SummaryOut(
        currency=p.settings.currency,
        balance=Money.of(s.balance),
        held=Money.of(s.held),
        available=Money.of(available),
        open_holds=[
            HoldOut(
                id=h.id,
                amount=Money.of(h.amount),
                purpose=h.purpose,
                ref=h.ref,
                created_at=iso(h.created_at) or "",
            )
            for h in s.open_holds
        ],
        days=[
            DayOut(
                date=d.date,
                spend=Money.of(d.spend),
                topup=Money.of(d.topup),
                adjust=Money.of(d.adjust),
            )
            for d in s.days
        ],
    )
