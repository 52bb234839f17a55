"""`/api/admin/users`: list users with their money, change a role, disable or re-enable.

Every route takes `AdminUser` (an admin's session with CSRF, or an admin's API key).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request

from llmage.console.models import (
    AdminUserListOut,
    AdminUserOut,
    AdminUserUpdate,
    Money,
    RowId,
    errors,
    iso,
)
from llmage.console.session import AdminUser, console_platform
from llmage.domain.errors import NotFound
from llmage.services.accounts import AccountService

router = APIRouter(prefix="/api/admin", tags=["Console: admin"])


def _user_out(row: Any, balance: int, held: int) -> AdminUserOut:
    return AdminUserOut(
        id=row.id,
        username=row.username,
        role=row.role,
        disabled=row.disabled,
        phone=row.phone,
        created_at=iso(row.created_at),
        balance=Money.of(balance),
        held=Money.of(held),
        available=Money.of(balance - held),
    )


@router.get(
    "/users", summary="Every user with balance, held and available", responses=errors(401, 403)
)
async def list_users(admin: AdminUser, request: Request) -> AdminUserListOut:
    rows = await console_platform(request).accounts.list_users()
    return AdminUserListOut(data=[_user_out(u, b, h) for u, b, h in rows])


@router.patch(
    "/users/{user_id}",
    summary="Change a user's role or disable / re-enable them",
    responses=errors(400, 401, 403, 404),
)
async def update_user(
    user_id: RowId, body: AdminUserUpdate, admin: AdminUser, request: Request
) -> AdminUserOut:
    p = console_platform(request)
    await AccountService(p).set_status(
        user_id, role=body.role, disabled=body.disabled, acting_admin=admin.user_id
    )
    row = await p.accounts.user_by_id(user_id)
    if row is None:
        raise NotFound(f"no user {user_id}")
    balance, held = await p.accounts.balance(user_id)
    return _user_out(row, balance, held)
