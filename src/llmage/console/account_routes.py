"""`/api/me`, `/api/keys`, `/api/webhook-secret`: the logged-in user's own account.

Every object is the caller's own: another user's key is a 404, exactly like a missing one.
A key revoked here stops working at once in this process (its cache is cleared on revoke).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from llmage.console.models import (
    KeyCreatedOut,
    KeyCreateRequest,
    KeyListOut,
    KeyOut,
    MeOut,
    Money,
    OkOut,
    RowId,
    WebhookSecretOut,
    errors,
    iso,
)
from llmage.console.session import CurrentUser, console_platform
from llmage.domain.errors import InvalidParameter, NotAuthenticated
from llmage.domain.money import parse_amount
from llmage.domain.phone import mask_phone
from llmage.services.accounts import AccountService

router = APIRouter(prefix="/api", tags=["Console: account"])


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"


@router.get("/me", summary="Who I am and my balance", responses=errors(401))
async def me(user: CurrentUser, request: Request, response: Response) -> MeOut:
    p = console_platform(request)
    row = await p.accounts.user_by_id(user.user_id)
    if row is None:
        raise NotAuthenticated("Session user no longer exists")
    balance, held = await p.accounts.balance(user.user_id)
    _no_store(response)
    return MeOut(
        id=row.id,
        username=row.username,
        role=row.role,
        phone=mask_phone(row.phone) if row.phone else None,
        created_at=iso(row.created_at),
        currency=p.settings.currency,
        balance=Money.of(balance),
        held=Money.of(held),
        available=Money.of(balance - held),
        csrf_token=p.sessions.csrf_for(user),
    )


def _key_out(k: Any, now_ms: int) -> dict[str, Any]:
    status = "active"
    if k.revoked_at is not None:
        status = "revoked"
    elif k.expires_at is not None and k.expires_at <= now_ms:
        status = "expired"
    return {
        "id": k.id,
        "name": k.name,
        "prefix": k.prefix,
        "status": status,
        "created_at": iso(k.created_at),
        "last_used_at": iso(k.last_used_at),
        "expires_at": iso(k.expires_at),
        "revoked_at": iso(k.revoked_at),
        "models": list(k.models) if k.models is not None else None,
        "spend_limit": Money.of(k.spend_limit) if k.spend_limit is not None else None,
        "spent": Money.of(k.spent),
    }


@router.get("/keys", summary="My API keys (newest last; revoked ones included)")
async def list_keys(user: CurrentUser, request: Request) -> KeyListOut:
    rows = await console_platform(request).accounts.list_keys(user.user_id)
    now = int(time.time() * 1000)
    return KeyListOut(data=[KeyOut(**_key_out(k, now)) for k in rows])


def _spend_limit(value: str | int | float | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_amount(str(value))
    except ValueError as exc:
        raise InvalidParameter(f"spend_limit: {exc}", param="spend_limit") from exc


@router.post(
    "/keys",
    status_code=201,
    summary="Create an API key; the key is in this answer only",
    responses=errors(400, 401, 403),
)
async def create_key(
    body: KeyCreateRequest, user: CurrentUser, request: Request, response: Response
) -> KeyCreatedOut:
    p = console_platform(request)
    new = await AccountService(p).create_key(
        user.user_id,
        name=body.name,
        expires_in_days=body.expires_days,
        models=[m.strip() for m in body.models if m.strip()] if body.models else None,
        spend_limit=_spend_limit(body.spend_limit),
    )
    (row,) = [k for k in await p.accounts.list_keys(user.user_id) if k.id == new.id]
    _no_store(response)
    return KeyCreatedOut(key=new.key, **_key_out(row, int(time.time() * 1000)))


@router.delete(
    "/keys/{key_id}",
    summary="Revoke one of my keys (requests with it are refused at once)",
    responses=errors(401, 403, 404),
)
async def revoke_key(key_id: RowId, user: CurrentUser, request: Request) -> OkOut:
    await AccountService(console_platform(request)).revoke_key(key_id, user.user_id)
    return OkOut()


@router.get(
    "/webhook-secret",
    summary="My webhook signing secret (verifies X-Llmage-Signature on task callbacks)",
    responses=errors(401),
)
async def webhook_secret(
    user: CurrentUser, request: Request, response: Response
) -> WebhookSecretOut:
    _no_store(response)
    return WebhookSecretOut(
        secret=await console_platform(request).webhook_secrets.for_user(user.user_id)
    )


@router.post(
    "/webhook-secret/rotate",
    summary="Replace my webhook signing secret; callbacks sent from now on use the new one",
    responses=errors(401, 403),
)
async def rotate_webhook_secret(
    user: CurrentUser, request: Request, response: Response
) -> WebhookSecretOut:
    _no_store(response)
    return WebhookSecretOut(
        secret=await console_platform(request).webhook_secrets.rotate(user.user_id)
    )
