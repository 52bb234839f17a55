"""The ledger's money programs, as SQL: hold, settle, credit (see billing/ledger.py for the rules
they keep). Every admission or state change is one conditional statement whose row count the store
checks (`expect_one`), so a program either applies whole or fails with the reason named below."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmage.db.money.program import MoneyStore, Stmt
from llmage.domain.errors import InsufficientBalance


class KeyRefused(Exception):
    """The key is revoked, expired or over its spend limit; `key_state` tells which."""


class HoldAlreadySettled(Exception):
    pass


class UnknownAccount(Exception):
    pass


_KEY_HOLD = (
    "UPDATE api_keys SET last_used_at = :now, spent = spent + :amount WHERE id = :key"
    " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > :now)"
    " AND (spend_limit IS NULL OR spent + :amount <= spend_limit)"
)
_KEY_STATE = "SELECT revoked_at, expires_at FROM api_keys WHERE id = :key"
_ACCOUNT_HOLD = (
    "UPDATE accounts SET held = held + :amount WHERE user_id = :user AND balance - held >= :amount"
)
_INSERT_HOLD = (
    "INSERT INTO holds (id, user_id, key_id, amount, state, purpose, ref, created_at)"
    " VALUES (:hold, :user, :key, :amount, 'open', :purpose, :ref, :now)"
)
_INSERT_ENTRY = (
    "INSERT INTO ledger_entries (user_id, kind, delta_balance, delta_held, ref, hold_id, memo,"
    " created_at) VALUES (:user, :kind, :db, :dh, :ref, :hold, :memo, :now)"
)
_SETTLE_HOLD = (
    "UPDATE holds SET state = :state, captured = :captured, settled_at = :now"
    " WHERE id = :hold AND state = 'open' AND amount >= :captured"
)
_ACCOUNT_SETTLE = (
    "UPDATE accounts SET balance = balance - :captured, held = held - :amount WHERE user_id = :user"
)
_KEY_SETTLE = "UPDATE api_keys SET spent = spent - :unused WHERE id = :key"
_ACCOUNT_CREDIT = "UPDATE accounts SET balance = balance + :amount WHERE user_id = :user"


def hold_stmts(
    *,
    hold_id: str,
    user_id: int,
    key_id: int | None,
    amount: int,
    purpose: str,
    ref: str | None,
    now: int,
) -> list[Stmt]:
    p = {
        "now": now,
        "key": key_id,
        "amount": amount,
        "user": user_id,
        "hold": hold_id,
        "purpose": purpose,
        "ref": ref,
        "kind": "hold",
        "db": 0,
        "dh": amount,
        "memo": None,
    }
    stmts: list[Stmt] = []
    if key_id is not None:
        # Revocation, expiry and the spend limit are enforced here, inside the hold, so a
        # stale auth cache can never let a dead key spend.
        stmts.append(Stmt(_KEY_HOLD, p, KeyRefused))
    stmts.append(Stmt(_ACCOUNT_HOLD, p, InsufficientBalance))
    stmts.append(Stmt(_INSERT_HOLD, p))
    stmts.append(Stmt(_INSERT_ENTRY, {**p, "ref": f"hold:{hold_id}"}))
    return stmts


def settle_stmts(
    *, hold_id: str, user_id: int, key_id: int | None, amount: int, captured: int, now: int
) -> list[Stmt]:
    """Capture `captured` (already clamped to the hold's `amount`) and release the rest."""
    p = {
        "now": now,
        "hold": hold_id,
        "user": user_id,
        "key": key_id,
        "amount": amount,
        "captured": captured,
        "unused": amount - captured,
        "state": "captured" if captured else "released",
        "kind": "capture" if captured else "release",
        "db": -captured,
        "dh": -amount,
        "ref": f"settle:{hold_id}",
        "memo": None,
    }
    stmts = [
        Stmt(_SETTLE_HOLD, p, HoldAlreadySettled),
        Stmt(_ACCOUNT_SETTLE, p, UnknownAccount),
        Stmt(_INSERT_ENTRY, p),
    ]
    if key_id is not None:
        stmts.append(Stmt(_KEY_SETTLE, p))
    return stmts


def credit_stmts(
    *, user_id: int, amount: int, ref: str, kind: str, memo: str | None, now: int
) -> list[Stmt]:
    p: dict[str, Any] = {
        "now": now,
        "user": user_id,
        "amount": amount,
        "kind": kind,
        "db": amount,
        "dh": 0,
        "ref": ref,
        "hold": None,
        "memo": memo,
    }
    return [Stmt(_INSERT_ENTRY, p), Stmt(_ACCOUNT_CREDIT, p, UnknownAccount)]


def held_key(stmts: Sequence[Stmt]) -> int | None:
    """The key a hold program charges, if it has one."""
    return next((s.params["key"] for s in stmts if s.sql is _KEY_HOLD), None)


async def key_state(store: MoneyStore, key_id: int) -> tuple[int | None, int | None] | None:
    """(revoked_at, expires_at) of a key, or None if it does not exist."""
    row = await store.fetch_one(_KEY_STATE, {"key": key_id})
    return (row[0], row[1]) if row is not None else None
