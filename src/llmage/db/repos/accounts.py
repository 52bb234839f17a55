"""Users, accounts and API keys."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from llmage.db.tables import accounts, api_keys, users
from llmage.domain.clock import now_ms
from llmage.domain.errors import Conflict
from llmage.domain.limits import LimitPolicy
from llmage.domain.principal import KeyAuth


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    username: str
    email: str | None
    role: str
    disabled: bool
    created_at: int
    password_hash: str
    phone: str | None = None
    webhook_salt: str | None = None
    limits: LimitPolicy | None = None


@dataclass(frozen=True, slots=True)
class KeyRow:
    id: int
    user_id: int
    name: str
    prefix: str
    created_at: int
    last_used_at: int | None
    expires_at: int | None
    revoked_at: int | None
    models: tuple[str, ...] | None
    spend_limit: int | None
    spent: int
    limits: LimitPolicy | None = None


def _policy(m: Mapping[Any, Any], prefix: str = "") -> LimitPolicy | None:
    """The limits stored in a row's columns (`prefix` distinguishes joined tables)."""
    models = m[f"{prefix}model_limits"]
    return LimitPolicy.from_columns(
        m[f"{prefix}rpm_limit"],
        m[f"{prefix}tpm_limit"],
        m[f"{prefix}concurrency_limit"],
        m[f"{prefix}task_limit"],
        json.loads(models) if models else None,
    )


def limit_values(policy: LimitPolicy) -> dict[str, Any]:
    """Columns for a policy (the inverse of `_policy`)."""
    b = policy.base
    models = policy.models_json()
    return {
        "rpm_limit": b.rpm,
        "tpm_limit": b.tpm,
        "concurrency_limit": b.concurrency,
        "task_limit": b.tasks,
        "model_limits": json.dumps(models, sort_keys=True) if models else None,
    }


def _key_row(r: object) -> KeyRow:
    m = r._mapping  # type: ignore[attr-defined]
    return KeyRow(
        id=m["id"],
        user_id=m["user_id"],
        name=m["name"],
        prefix=m["prefix"],
        created_at=m["created_at"],
        last_used_at=m["last_used_at"],
        expires_at=m["expires_at"],
        revoked_at=m["revoked_at"],
        models=tuple(json.loads(m["models"])) if m["models"] else None,
        spend_limit=m["spend_limit"],
        spent=m["spent"],
        limits=_policy(m),
    )


def _user_row(r: object) -> UserRow:
    m = r._mapping  # type: ignore[attr-defined]
    return UserRow(
        id=m["id"],
        username=m["username"],
        email=m["email"],
        role=m["role"],
        disabled=bool(m["disabled"]),
        created_at=m["created_at"],
        password_hash=m["password_hash"],
        phone=m["phone"],
        webhook_salt=m["webhook_salt"],
        limits=_policy(m),
    )


class AccountRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create_user(
        self,
        username: str,
        password_hash: str,
        *,
        role: str = "user",
        email: str | None = None,
        phone: str | None = None,
    ) -> int:
        """A taken username or phone is a Conflict, decided by the unique indexes (race-safe)."""
        try:
            return await self._insert_user(username, password_hash, role, email, phone)
        except IntegrityError as exc:
            raise Conflict("username or phone number already registered", param="username") from exc

    async def _insert_user(
        self, username: str, password_hash: str, role: str, email: str | None, phone: str | None
    ) -> int:
        async with self._engine.begin() as conn:
            res = await conn.execute(
                insert(users)
                .values(
                    username=username,
                    email=email,
                    phone=phone,
                    password_hash=password_hash,
                    role=role,
                    disabled=False,
                    created_at=now_ms(),
                )
                .returning(users.c.id)
            )
            user_id = int(res.scalar_one())
            await conn.execute(insert(accounts).values(user_id=user_id, balance=0, held=0))
        return user_id

    async def user_by_name(self, username: str) -> UserRow | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.username == username))).first()
        return _user_row(row) if row else None

    async def user_by_phone(self, phone: str) -> UserRow | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.phone == phone))).first()
        return _user_row(row) if row else None

    async def update_user(self, user_id: int, **values: object) -> bool:
        """Set columns of one user (password_hash, phone, webhook_salt, role, disabled)."""
        allowed = {"password_hash", "phone", "webhook_salt", "role", "disabled"}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        async with self._engine.begin() as conn:
            res = await conn.execute(update(users).where(users.c.id == user_id).values(**values))
        return bool(res.rowcount)

    async def user_by_id(self, user_id: int) -> UserRow | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
        return _user_row(row) if row else None

    async def list_users(self) -> list[tuple[UserRow, int, int]]:
        """Users with (balance, held)."""
        q = (
            select(users, accounts.c.balance, accounts.c.held)
            .join(accounts, accounts.c.user_id == users.c.id)
            .order_by(users.c.id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [(_user_row(r), r.balance, r.held) for r in rows]

    async def balance(self, user_id: int) -> tuple[int, int]:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(accounts.c.balance, accounts.c.held).where(accounts.c.user_id == user_id)
                )
            ).one()
        return int(row.balance), int(row.held)

    async def create_key(
        self,
        user_id: int,
        *,
        name: str,
        prefix: str,
        key_hash: str,
        expires_at: int | None = None,
        models: list[str] | None = None,
        spend_limit: int | None = None,
    ) -> int:
        async with self._engine.begin() as conn:
            res = await conn.execute(
                insert(api_keys)
                .values(
                    user_id=user_id,
                    name=name,
                    prefix=prefix,
                    key_hash=key_hash,
                    created_at=now_ms(),
                    expires_at=expires_at,
                    models=json.dumps(models) if models else None,
                    spend_limit=spend_limit,
                    spent=0,
                )
                .returning(api_keys.c.id)
            )
            return int(res.scalar_one())

    async def list_keys(self, user_id: int | None = None) -> list[KeyRow]:
        q = select(api_keys).order_by(api_keys.c.id)
        if user_id is not None:
            q = q.where(api_keys.c.user_id == user_id)
        async with self._engine.connect() as conn:
            return [_key_row(r) for r in (await conn.execute(q)).all()]

    async def revoke_key(self, key_id: int, user_id: int | None = None) -> bool:
        q = update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        if user_id is not None:
            q = q.where(api_keys.c.user_id == user_id)
        async with self._engine.begin() as conn:
            res = await conn.execute(q.values(revoked_at=now_ms()))
        return bool(res.rowcount)

    async def key_auth(self, key_hash: str, now: int) -> KeyAuth | None:
        q = (
            select(
                api_keys.c.id,
                api_keys.c.user_id,
                api_keys.c.models,
                api_keys.c.expires_at,
                users.c.username,
                users.c.role,
                api_keys.c.rpm_limit,
                api_keys.c.tpm_limit,
                api_keys.c.concurrency_limit,
                api_keys.c.task_limit,
                api_keys.c.model_limits,
                users.c.rpm_limit.label("u_rpm_limit"),
                users.c.tpm_limit.label("u_tpm_limit"),
                users.c.concurrency_limit.label("u_concurrency_limit"),
                users.c.task_limit.label("u_task_limit"),
                users.c.model_limits.label("u_model_limits"),
            )
            .join(users, users.c.id == api_keys.c.user_id)
            .where(
                api_keys.c.key_hash == key_hash,
                api_keys.c.revoked_at.is_(None),
                users.c.disabled.is_(False),
            )
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(q)).first()
        if row is None or (row.expires_at is not None and row.expires_at <= now):
            return None
        return KeyAuth(
            key_id=row.id,
            user_id=row.user_id,
            username=row.username,
            role=row.role,
            models=frozenset(json.loads(row.models)) if row.models else None,
            expires_at=row.expires_at,
            key_limits=_policy(row._mapping),
            user_limits=_policy(row._mapping, "u_"),
        )

    async def set_key_limits(self, key_id: int, policy: LimitPolicy) -> bool:
        q = update(api_keys).where(api_keys.c.id == key_id).values(**limit_values(policy))
        async with self._engine.begin() as conn:
            return bool((await conn.execute(q)).rowcount)

    async def set_user_limits(self, user_id: int, policy: LimitPolicy) -> bool:
        q = update(users).where(users.c.id == user_id).values(**limit_values(policy))
        async with self._engine.begin() as conn:
            return bool((await conn.execute(q)).rowcount)

    async def key_by_id(self, key_id: int) -> KeyRow | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
        return _key_row(row) if row else None
