"""Redeem codes: admins create batches, users redeem a code once for its amount.

A code is 20 characters from an alphabet without look-alikes (about 99 bits), shown in groups of
four. Only its SHA-256 is stored, like an API key, so the batch's codes are shown once, when it is
created. Redeeming is race-safe in the repository (one conditional claim + a unique ledger ref).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from llmage.auth.throttle import Rule, Throttle
from llmage.db.repos.redeem import CodeListing, RedeemBatch, RedeemRepo
from llmage.domain.clock import now_ms
from llmage.domain.errors import Conflict, InvalidParameter, NotFound, TooManyAttempts
from llmage.domain.money import MICROS_PER_UNIT

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no I, O, 0, 1: read aloud and typed by hand
CODE_LENGTH = 20
MAX_BATCH = 1000
MAX_CODE_AMOUNT = 100_000 * MICROS_PER_UNIT
CODE_STATUSES = ("unused", "redeemed", "expired")
# Wrong codes per user: guessing 99 bits is hopeless anyway, but a script should not try.
GUESS_RULES = (Rule(10, 3600), Rule(30, 86400))


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def normalise(code: str) -> str:
    """What was typed -> the canonical code: case, spaces and dashes do not matter."""
    return "".join(ch for ch in code.upper() if ch not in " -\t\r\n")


def code_hash(code: str) -> str:
    return hashlib.sha256(normalise(code).encode()).hexdigest()


def code_prefix(code: str) -> str:
    """What lists may show: enough to tell codes apart, far too little to redeem one."""
    n = normalise(code)
    return f"{n[:4]}…{n[-2:]}"


class CodeExpired(Conflict):
    code = "redeem_code_expired"


class CodeUsed(Conflict):
    code = "redeem_code_used"


@dataclass(frozen=True, slots=True)
class NewBatch:
    id: int
    amount: int
    expires_at: int | None
    codes: list[str]  # shown once


class RedeemService:
    def __init__(
        self,
        repo: RedeemRepo,
        clock: Callable[[], int] = now_ms,
        throttle: Throttle | None = None,
    ) -> None:
        self._repo = repo
        self._clock = clock
        self._throttle = throttle or Throttle()

    async def create_batch(
        self,
        *,
        admin_id: int,
        count: int,
        amount: int,
        expires_at: int | None = None,
        expires_in_days: float | None = None,
        note: str = "",
    ) -> NewBatch:
        if not 1 <= count <= MAX_BATCH:
            raise InvalidParameter(f"count must be between 1 and {MAX_BATCH}", param="count")
        if not 0 < amount <= MAX_CODE_AMOUNT:
            raise InvalidParameter(
                f"amount must be above 0 and at most {MAX_CODE_AMOUNT // MICROS_PER_UNIT}",
                param="amount",
            )
        now = self._clock()
        if expires_in_days is not None:
            if expires_at is not None:
                raise InvalidParameter(
                    "give expires_at or expires_in_days, not both", param="expires_in_days"
                )
            if not 0 < expires_in_days <= 3650:
                raise InvalidParameter(
                    "expires_in_days must be above 0 and at most 3650", param="expires_in_days"
                )
            expires_at = now + int(expires_in_days * 86_400_000)
        if expires_at is not None and expires_at <= now:
            raise InvalidParameter("expires_at must be in the future", param="expires_at")
        if len(note) > 200:
            raise InvalidParameter("note must have at most 200 characters", param="note")
        codes = [new_code() for _ in range(count)]
        batch_id = await self._repo.create_batch(
            note=note,
            amount=amount,
            expires_at=expires_at,
            created_by=admin_id,
            codes=[(code_hash(c), code_prefix(c)) for c in codes],
            now=now,
        )
        return NewBatch(batch_id, amount, expires_at, codes)

    async def redeem(self, user_id: int, code: str) -> int:
        """Credit the code's amount to `user_id`; returns it. Every refusal names `code`."""
        key = f"redeem:user:{user_id}"
        wait = self._throttle.retry_after(key, GUESS_RULES)
        if wait is not None:
            raise TooManyAttempts(
                f"Too many wrong codes; try again in {max(1, int(wait + 0.999))} s",
                retry_after=wait,
                param="code",
            )
        n = normalise(code)
        if len(n) != CODE_LENGTH or any(ch not in ALPHABET for ch in n):
            raise InvalidParameter(
                f"a redeem code has {CODE_LENGTH} letters and digits (dashes optional)",
                param="code",
            )
        row = await self._repo.by_hash(code_hash(n))
        if row is None:
            self._throttle.record(key, GUESS_RULES)
            raise NotFound("no such redeem code", param="code")
        now = self._clock()
        if row.redeemed_at is None and row.expires_at is not None and row.expires_at <= now:
            raise CodeExpired("this redeem code has expired", param="code")
        if row.redeemed_at is not None or not await self._repo.redeem(row, user_id, now):
            raise CodeUsed("this redeem code has already been used", param="code")
        return row.amount

    async def codes(
        self, *, batch_id: int | None, status: str | None, offset: int, limit: int
    ) -> list[CodeListing]:
        if status is not None and status not in CODE_STATUSES:
            raise InvalidParameter(
                f"unknown status {status!r}", param="status", allowed=CODE_STATUSES
            )
        return await self._repo.list_codes(
            batch_id=batch_id, status=status, now=self._clock(), offset=offset, limit=limit
        )

    async def batches(self, *, offset: int, limit: int) -> list[RedeemBatch]:
        return await self._repo.list_batches(offset=offset, limit=limit)
