"""An admin's manual credit or debit of a user's balance, with a reason, in the ledger.

The entry records the reason (memo) and the admin (actor_id). A debit never takes the available
balance (balance − open holds) below zero: the repository admits it with one conditional update.
An `Idempotency-Key` makes a retried request apply once; without one, each request applies.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmage.db.repos.accounts import AccountRepo
from llmage.db.repos.credits import AdjustmentRepo
from llmage.domain.errors import InvalidParameter, NotFound
from llmage.domain.ids import public_id
from llmage.domain.money import MAX_AMOUNT

MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class Adjusted:
    applied: bool  # False: this idempotency key was applied before, nothing changed now
    balance: int
    held: int


class AdjustmentService:
    def __init__(self, repo: AdjustmentRepo, accounts: AccountRepo) -> None:
        self._repo = repo
        self._accounts = accounts

    async def adjust(
        self,
        *,
        admin_id: int,
        user_id: int,
        amount: int,
        debit: bool,
        reason: str,
        idempotency_key: str | None = None,
    ) -> Adjusted:
        if not 0 < amount <= MAX_AMOUNT:
            raise InvalidParameter("amount must be above 0", param="amount")
        reason = reason.strip()
        if not reason:
            raise InvalidParameter("a reason is required", param="reason")
        if len(reason) > MAX_REASON:
            raise InvalidParameter(
                f"reason must have at most {MAX_REASON} characters", param="reason"
            )
        if idempotency_key is not None and not 0 < len(idempotency_key) <= 100:
            raise InvalidParameter(
                "Idempotency-Key must have 1 to 100 characters", param="Idempotency-Key"
            )
        if await self._accounts.user_by_id(user_id) is None:
            raise NotFound(f"no user {user_id}", param="user_id")
        ref = f"admin:{admin_id}:{idempotency_key}" if idempotency_key else f"admin:{public_id()}"
        applied = await self._repo.adjust(
            user_id, -amount if debit else amount, ref=ref, reason=reason, actor_id=admin_id
        )
        balance, held = await self._accounts.balance(user_id)
        return Adjusted(applied, balance, held)
