"""Who is calling: the authenticated principal every edge hands to the services."""

from __future__ import annotations

from dataclasses import dataclass

from llmage.domain.limits import LimitPolicy


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
