"""Who is calling: the authenticated principals every edge hands to the services.

`KeyAuth` is an API request's key; `ConsoleUser` is a console caller (a session cookie, or an
admin's API key on admin routes). Shared by services and edges, so they live here, pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmage.domain.limits import LimitPolicy

ROLES: tuple[str, ...] = ("user", "admin")


@dataclass(frozen=True, slots=True)
class KeyAuth:
    """What a request needs to know about its key; cached in memory by the auth layer."""

    key_id: int
    user_id: int
    username: str
    role: str
    models: frozenset[str] | None
    expires_at: int | None
    key_limits: LimitPolicy | None = None  # rate/concurrency limits (None: none set)
    user_limits: LimitPolicy | None = None


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    user_id: int
    username: str
    role: str
    # "session": a browser (or script) holding a session cookie; "key": an admin's API key.
    via: Literal["session", "key"]
    session_id: str | None = None  # SHA-256 of the session token (never the token itself)
    key_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"
