"""Top-up and redeem routes: create and read orders, Alipay's notify and return, redeem a code.

`POST /api/payments/alipay/notify` is called by Alipay, not a browser: no session, no CSRF. It
answers the bare text `success` only after the credit (or the finding that it was credited
before) has committed; anything else makes Alipay deliver it again later.
"""

from __future__ import annotations

import io
import logging
from typing import Annotated, Literal
from urllib.parse import parse_qsl

import segno
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from llmage.console.amounts import AmountIn, amount_in
from llmage.console.models import Money, _Request, errors, iso
from llmage.console.session import CurrentUser, console_platform
from llmage.domain.errors import NotFound
from llmage.services.finance import page_window
from llmage.services.platform import Platform
from llmage.services.topups import NOTIFY_PATH, RETURN_PATH, TopupOrder

log = logging.getLogger(__name__)
router = APIRouter(tags=["Console: top-up"])
PlatformDep = Annotated[Platform, Depends(console_platform)]

# Where the payer lands after Alipay's cashier (the console's finance page).
FINANCE_PAGE = "/finance"


class TopupIn(_Request):
    amount: AmountIn = Field(description='Currency units, e.g. "50.00" (whole fen)')
    method: Literal["alipay_page", "alipay_qr"] = Field(
        description="alipay_page: redirect the browser to `pay_url`; alipay_qr: show `qr_code`"
    )


class OrderBase(BaseModel):
    out_trade_no: str
    amount: Money
    method: str
    status: Literal["pending", "paid", "closed"]
    created_at: str
    expires_at: str = Field(description="Alipay refuses payment after this")
    paid_at: str | None
    closed_at: str | None
    trade_no: str | None = Field(description="Alipay's trade number, once paid")


class TopupOut(OrderBase):
    pay_url: str | None = Field(
        None,
        description="alipay_page, while pending: a freshly signed Alipay cashier URL "
        "(not in lists: read the order)",
    )
    qr_code: str | None = Field(None, description="alipay_qr, while pending: the QR content")
    qr_svg: str | None = Field(
        None, description="alipay_qr, while pending: the QR code as inline SVG (not in lists)"
    )


class TopupPage(BaseModel):
    items: list[TopupOut]
    page: int
    page_size: int
    has_more: bool


class RedeemIn(_Request):
    code: str = Field(max_length=64, description="The code, dashes and case optional")


class RedeemOut(BaseModel):
    credited: Money
    balance: Money


def qr_svg(content: str, *, inline: bool) -> str:
    qr = segno.make(content, error="m")
    if inline:
        return str(qr.svg_inline(scale=4, border=2))
    out = io.BytesIO()
    qr.save(out, kind="svg", scale=4, border=2)
    return out.getvalue().decode()


def order_fields(order: TopupOrder) -> dict[str, object]:
    return {
        "out_trade_no": order.out_trade_no,
        "amount": Money.of(order.amount),
        "method": order.method,
        "status": order.status,
        "created_at": iso(order.created_at),
        "expires_at": iso(order.expires_at),
        "paid_at": iso(order.paid_at),
        "closed_at": iso(order.closed_at),
        "trade_no": order.trade_no,
    }


def topup_out(
    p: Platform, order: TopupOrder, *, pay_url: str | None = None, links: bool = True
) -> TopupOut:
    """The order as the payer sees it. `links`: sign a fresh pay URL and render the QR code
    (one order's page; a list leaves them out: an RSA signature each is not free)."""
    pending = order.status == "pending"
    if links and pending and pay_url is None and p.topups.enabled:
        pay_url = p.topups.pay_url(order)
    return TopupOut.model_validate(
        {
            **order_fields(order),
            "pay_url": pay_url,
            "qr_code": order.qr_code if pending else None,
            "qr_svg": qr_svg(order.qr_code, inline=True)
            if links and pending and order.qr_code
            else None,
        }
    )


@router.post(
    "/api/topups",
    summary="Create a top-up order",
    description="Answers the order with its Alipay cashier URL (alipay_page) or QR code "
    "(alipay_qr). The balance is credited when Alipay confirms the payment.",
    response_model=TopupOut,
    responses=errors(400, 401, 403, 503),
)
async def create_topup(body: TopupIn, user: CurrentUser, p: PlatformDep) -> TopupOut:
    micros = amount_in(body.amount)
    new = await p.topups.create(user.user_id, micros, body.method)
    return topup_out(p, new.order, pay_url=new.pay_url)


@router.get(
    "/api/topups",
    summary="My top-up orders, newest first",
    response_model=TopupPage,
    responses=errors(400, 401),
)
async def list_topups(
    user: CurrentUser,
    p: PlatformDep,
    status: Annotated[Literal["pending", "paid", "closed"] | None, Query()] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 20,
) -> TopupPage:
    offset, size = page_window(page, page_size)
    rows = await p.topups.page(user_id=user.user_id, status=status, offset=offset, limit=size + 1)
    return TopupPage(
        items=[topup_out(p, order, links=False) for order, _ in rows[:size]],
        page=page,
        page_size=size,
        has_more=len(rows) > size,
    )


@router.get(
    "/api/topups/{out_trade_no}",
    summary="One of my top-up orders",
    response_model=TopupOut,
    responses=errors(401, 404),
)
async def get_topup(out_trade_no: str, user: CurrentUser, p: PlatformDep) -> TopupOut:
    return topup_out(p, await p.topups.get(user.user_id, out_trade_no))


@router.get(
    "/api/topups/{out_trade_no}/qr.svg",
    summary="The QR code of a pending alipay_qr order, as an SVG image",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}},
)
async def topup_qr(out_trade_no: str, user: CurrentUser, p: PlatformDep) -> Response:
    order = await p.topups.get(user.user_id, out_trade_no)
    if order.status != "pending" or not order.qr_code:
        raise NotFound("this order has no QR code to pay (paid, closed or page pay)")
    return Response(
        qr_svg(order.qr_code, inline=False),
        media_type="image/svg+xml",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


NOTIFY_MAX_BYTES = 64 * 1024  # a real notify is about 1.5 KB


async def _body(request: Request) -> bytes | None:
    """The request body, or None past NOTIFY_MAX_BYTES (read no further)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > NOTIFY_MAX_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _form(raw: bytes) -> dict[str, str] | None:
    """The notify's form fields, or None if it is not a plain form (duplicates included)."""
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    fields = dict(pairs)
    return fields if len(fields) == len(pairs) else None


@router.post(
    NOTIFY_PATH,
    summary="Alipay's asynchronous payment notification (called by Alipay)",
    description="Answers the bare text `success` once the payment is credited (or was before); "
    "anything else makes Alipay retry.",
    response_class=PlainTextResponse,
)
async def alipay_notify(request: Request, p: PlatformDep) -> PlainTextResponse:
    raw = await _body(request)
    params = _form(raw) if raw is not None else None
    if not p.topups.enabled:
        return PlainTextResponse("failure", status_code=503)
    if params is None or not await p.topups.handle_notify(params):
        return PlainTextResponse("failure", status_code=400)
    return PlainTextResponse("success")


@router.get(
    RETURN_PATH,
    summary="Where Alipay sends the payer back: checks the order, then the finance page",
    response_class=RedirectResponse,
    status_code=303,
)
async def alipay_return(request: Request, p: PlatformDep) -> RedirectResponse:
    params = dict(request.query_params)
    no = params.get("out_trade_no", "")
    target = FINANCE_PAGE
    if p.topups.enabled and no and p.topups.verify_return(params):
        # The notify may lag the payer: ask Alipay now so the balance is right on arrival.
        try:
            await p.topups.refresh(no)
        except Exception:
            log.exception("refreshing order %s on return failed", no)
        target = f"{FINANCE_PAGE}?order={no}" if no.isascii() and no.isalnum() else FINANCE_PAGE
    return RedirectResponse(target, status_code=303)


@router.post(
    "/api/redeem",
    summary="Redeem a code for balance",
    response_model=RedeemOut,
    responses=errors(400, 401, 403, 404, 409),
)
async def redeem(body: RedeemIn, user: CurrentUser, p: PlatformDep) -> RedeemOut:
    credited = await p.redeem.redeem(user.user_id, body.code)
    balance, _ = await p.accounts.balance(user.user_id)
    return RedeemOut(credited=Money.of(credited), balance=Money.of(balance))
