"""`POST /api/playground/key`: the playground runs as the logged-in user without a pasted key.

The page asks its session (cookie + CSRF) for the user's own playground key: a real API key
named "playground", expiring within a day, minted on demand; a new one revokes the previous
ones. The page then calls the ordinary API with it, so a playground call is authenticated,
limited and billed exactly as any API call, and the API's hot path gains nothing.
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from llmage.console.models import errors, iso
from llmage.console.session import CurrentUser, console_platform
from llmage.domain.errors import NotFound
from llmage.services.accounts import AccountService

router = APIRouter(prefix="/api", tags=["Console: account"])

KEY_NAME = "playground"
KEY_DAYS = 1.0


class PlaygroundKeyOut(BaseModel):
    key: str
    expires_at: str | None


@router.post(
    "/playground/key",
    summary="A fresh key for the playground (previous playground keys are revoked)",
    responses=errors(401, 403),
)
async def playground_key(
    user: CurrentUser, request: Request, response: Response
) -> PlaygroundKeyOut:
    p = console_platform(request)
    svc = AccountService(p)
    for old in await p.accounts.list_keys(user.user_id):
        if old.name == KEY_NAME and old.revoked_at is None:
            with contextlib.suppress(NotFound):  # a concurrent mint revoked it first
                await svc.revoke_key(old.id, user.user_id)
    new = await svc.create_key(user.user_id, name=KEY_NAME, expires_in_days=KEY_DAYS)
    (row,) = [k for k in await p.accounts.list_keys(user.user_id) if k.id == new.id]
    response.headers["Cache-Control"] = "no-store"
    return PlaygroundKeyOut(key=new.key, expires_at=iso(row.expires_at))
