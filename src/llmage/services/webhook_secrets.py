"""Per-user webhook signing secrets: shown to their owner, rotatable, used to sign callbacks.

Nothing secret is stored: the secret is derived (auth/tokens.py) from the deployment's webhook
secret and the user's `webhook_salt`; rotating writes a fresh random salt. One deployment secret
used to sign every tenant's callbacks, so a tenant able to verify theirs could forge others'.
"""

from __future__ import annotations

import secrets

from llmage.auth.tokens import user_webhook_secret
from llmage.db.repos.accounts import AccountRepo
from llmage.domain.errors import NotFound


class WebhookSecrets:
    def __init__(self, accounts: AccountRepo, base: bytes) -> None:
        self._accounts = accounts
        self._base = base

    async def for_user(self, user_id: int) -> str:
        user = await self._accounts.user_by_id(user_id)
        if user is None:
            raise NotFound(f"no user {user_id}")
        return user_webhook_secret(self._base, user_id, user.webhook_salt)

    async def signing_key(self, user_id: int) -> bytes:
        return (await self.for_user(user_id)).encode()

    async def rotate(self, user_id: int) -> str:
        salt = secrets.token_hex(16)
        if not await self._accounts.update_user(user_id, webhook_salt=salt):
            raise NotFound(f"no user {user_id}")
        return user_webhook_secret(self._base, user_id, salt)
