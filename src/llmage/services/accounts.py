"""Account operations shared by the CLI, the demo and (later) the console."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from llmage.auth.keys import generate_key, hash_key, key_prefix
from llmage.auth.passwords import hash_password
from llmage.domain.errors import Conflict, InvalidParameter, NotFound
from llmage.domain.limits import LimitPolicy, Limits
from llmage.domain.phone import normalize_phone
from llmage.services.invalidation import KEYS
from llmage.services.platform import Platform


@dataclass(frozen=True, slots=True)
class NewKey:
    id: int
    key: str  # shown once
    prefix: str


class AccountService:
    def __init__(self, platform: Platform) -> None:
        self._p = platform

    async def create_user(
        self,
        username: str,
        password: str,
        *,
        role: str = "user",
        email: str | None = None,
        phone: str | None = None,
    ) -> int:
        if role not in ("user", "admin"):
            raise InvalidParameter(
                "role must be 'user' or 'admin'", param="role", allowed=("user", "admin")
            )
        if len(password) < 8:
            raise InvalidParameter("password must have at least 8 characters", param="password")
        if await self._p.accounts.user_by_name(username):
            raise Conflict(f"user '{username}' already exists", param="username")
        number = normalize_phone(phone) if phone else None
        if number and await self._p.accounts.user_by_phone(number):
            raise Conflict("this phone number is already registered", param="phone")
        return await self._p.accounts.create_user(
            username, hash_password(password), role=role, email=email, phone=number
        )

    async def user_id(self, username_or_id: str) -> int:
        user = await self._p.accounts.user_by_name(username_or_id)
        if user is None and username_or_id.isdigit():
            user = await self._p.accounts.user_by_id(int(username_or_id))
        if user is None:
            raise NotFound(f"no user '{username_or_id}'")
        return user.id

    async def create_key(
        self,
        user_id: int,
        *,
        name: str,
        expires_in_days: float | None = None,
        models: list[str] | None = None,
        spend_limit: int | None = None,
        value: str | None = None,
        limits: Mapping[str, int | None] | None = None,
    ) -> NewKey:
        key = value or generate_key()
        if not key.startswith("sk-") or len(key) < 20:
            raise InvalidParameter("an API key must start with 'sk-' and have 20+ characters")
        if not name.strip() or len(name) > 128:
            raise InvalidParameter("name must have 1 to 128 characters", param="name")
        if spend_limit is not None and spend_limit <= 0:
            raise InvalidParameter("spend_limit must be more than 0", param="spend_limit")
        if models:
            self._check_models(models)
        expires = int((time.time() + expires_in_days * 86400) * 1000) if expires_in_days else None
        key_id = await self._p.accounts.create_key(
            user_id,
            name=name,
            prefix=key_prefix(key),
            key_hash=hash_key(key),
            expires_at=expires,
            models=models,
            spend_limit=spend_limit,
        )
        if limits and any(v is not None for v in limits.values()):
            await self.update_key_limits(key_id, limits)
        else:
            await self._p.invalidate(KEYS)  # an unknown key is cached as unknown for a while
        return NewKey(key_id, key, key_prefix(key))

    async def set_status(
        self,
        user_id: int,
        *,
        role: str | None = None,
        disabled: bool | None = None,
        acting_admin: int | None = None,
    ) -> None:
        """Change a user's role or disabled flag. Disabling ends their sessions and makes their
        keys fail at once in this process; an admin cannot lock themselves out."""
        if role is not None and role not in ("user", "admin"):
            raise InvalidParameter("unknown role", param="role", allowed=("user", "admin"))
        if acting_admin == user_id and (disabled or role == "user"):
            raise InvalidParameter(
                "an admin cannot disable or demote themselves",
                param="disabled" if disabled else "role",
            )
        values: dict[str, object] = {}
        if role is not None:
            values["role"] = role
        if disabled is not None:
            values["disabled"] = disabled
        if not values:
            if await self._p.accounts.user_by_id(user_id) is None:
                raise NotFound(f"no user {user_id}")
            return
        if not await self._p.accounts.update_user(user_id, **values):
            raise NotFound(f"no user {user_id}")
        if disabled:
            await self._p.sessions.revoke_others(user_id, keep=None)
        await self._p.invalidate(KEYS)  # every instance, within a second with Redis

    def _check_models(self, models: list[str]) -> None:
        catalog = self._p.catalog
        for m in models:
            if not (catalog.by_llmid(m) or catalog.by_name(m) or catalog.alias(m)):
                raise InvalidParameter(
                    f"models: unknown model '{m}' (names and llmids are listed by "
                    "GET /llmage/models)",
                    param="models",
                )

    async def revoke_key(self, key_id: int, user_id: int | None = None) -> None:
        if not await self._p.accounts.revoke_key(key_id, user_id):
            raise NotFound(f"no active key {key_id}")
        await self._p.invalidate(KEYS)

    async def set_user_disabled(self, user_id: int, disabled: bool) -> None:
        """A disabled user's keys stop working on every instance within a second."""
        await self.set_status(user_id, disabled=disabled)

    async def update_key_limits(
        self, key_id: int, changes: Mapping[str, int | None], model: str | None = None
    ) -> LimitPolicy:
        """Apply `changes` (rpm, tpm, concurrency, tasks; None clears one) to a key's limits,
        or to its override for `model`; returns the key's new limits."""
        row = await self._p.accounts.key_by_id(key_id)
        if row is None:
            raise NotFound(f"no key {key_id}")
        policy = _changed(row.limits, changes, model)
        await self._p.accounts.set_key_limits(key_id, policy)
        await self._p.invalidate(KEYS)
        return policy

    async def update_user_limits(
        self, user_id: int, changes: Mapping[str, int | None], model: str | None = None
    ) -> LimitPolicy:
        row = await self._p.accounts.user_by_id(user_id)
        if row is None:
            raise NotFound(f"no user {user_id}")
        policy = _changed(row.limits, changes, model)
        await self._p.accounts.set_user_limits(user_id, policy)
        await self._p.invalidate(KEYS)
        return policy


def _changed(
    current: LimitPolicy | None, changes: Mapping[str, int | None], model: str | None
) -> LimitPolicy:
    policy = current or LimitPolicy()
    try:
        if model is None:
            return LimitPolicy(policy.base.merged(changes), policy.models)
        if "tasks" in changes:
            raise ValueError("the open-task limit applies to all models; set it without a model")
        old = dict(policy.models).get(model, Limits())
        return policy.with_model(model, old.merged(changes))
    except ValueError as exc:
        raise InvalidParameter(str(exc)) from exc
