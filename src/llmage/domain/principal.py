"""Who is calling the console: the principal every console route receives.

Shared by services (which build it from a session or an admin's API key) and the console edge
(which hands it to routes), so it lives here, pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["user", "admin"]
ROLES: tuple[str, ...] = ("user", "admin")


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
