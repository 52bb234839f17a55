"""The ONE admin guard every `/api/admin/...` route depends on.

Today: `Authorization: Bearer sk-...`, an API key of a user whose role is `admin` (scripts,
the CLI's HTTP users). The console adds cookie sessions by extending this function, so every
admin route keeps a single dependency. A missing or bad key is 401; a valid key of a non-admin
user is 403.
"""

from __future__ import annotations

from starlette.requests import Request

from llmage.dialects.http import authenticate
from llmage.domain.errors import PermissionDenied
from llmage.domain.principal import KeyAuth


async def require_admin(request: Request) -> KeyAuth:
    auth = await authenticate(request)
    if auth.role != "admin":
        raise PermissionDenied("This operation needs an administrator", code="admin_required")
    return auth
