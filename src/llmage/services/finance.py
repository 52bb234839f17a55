"""A user's money at a glance: balance and open holds, ledger entries, usage, daily totals.

Dates in filters are calendar days in the deployment's time zone (`LLMAGE_TIMEZONE`), inclusive
at both ends. Daily totals bucket by that zone's current UTC offset (exact for zones without
daylight saving, such as China's).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from llmage.db.repos.accounts import AccountRepo
from llmage.db.repos.finance import (
    DAY_MS,
    USAGE_KINDS,
    USAGE_STATUSES,
    EntryRow,
    FinanceRepo,
    OpenHold,
    UsageRow,
)
from llmage.db.repos.finance import UsageFilter as UsageFilter  # re-exported for the console
from llmage.domain.clock import now_ms
from llmage.domain.errors import InvalidParameter

T = TypeVar("T")
LEDGER_KINDS = ("topup", "redeem", "adjust", "hold", "capture", "release", "refund")
MAX_PAGE_SIZE = 200
MAX_DAYS = 366
CSV_MAX_ROWS = 100_000


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    page_size: int
    has_more: bool


@dataclass(frozen=True, slots=True)
class DayTotals:
    date: str  # YYYY-MM-DD, local
    spend: int  # charges minus refunds
    topup: int  # top-ups and redeemed codes
    adjust: int  # manual adjustments, net


@dataclass(frozen=True, slots=True)
class Summary:
    balance: int
    held: int
    open_holds: list[OpenHold]
    days: list[DayTotals]


def page_window(page: int, page_size: int) -> tuple[int, int]:
    if page < 1:
        raise InvalidParameter("page must be 1 or more", param="page")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidParameter(
            f"page_size must be between 1 and {MAX_PAGE_SIZE}", param="page_size"
        )
    return (page - 1) * page_size, page_size


def _paged(rows: list[T], page: int, size: int) -> Page[T]:
    return Page(rows[:size], page, size, len(rows) > size)


class FinanceService:
    def __init__(
        self,
        repo: FinanceRepo,
        accounts: AccountRepo,
        timezone: str,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._repo = repo
        self._accounts = accounts
        try:
            self._zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"LLMAGE_TIMEZONE: unknown time zone {timezone!r}") from exc
        self._clock = clock

    # --- dates ---------------------------------------------------------------------------------

    def _day_start(self, text: str, param: str) -> int:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise InvalidParameter(f"{param} must be a date like 2025-01-31", param=param) from None
        local = datetime(day.year, day.month, day.day, tzinfo=self._zone)
        return int(local.timestamp() * 1000)

    def date_range(
        self, date_from: str | None, date_to: str | None
    ) -> tuple[int | None, int | None]:
        """Epoch ms [since, until) of the local days `date_from`..`date_to`, both inclusive."""
        since = self._day_start(date_from, "from") if date_from else None
        until = None
        if date_to:
            until = self._day_start(date_to, "to") + DAY_MS
        if since is not None and until is not None and since >= until:
            raise InvalidParameter("from must not be after to", param="from")
        return since, until

    def _offset_ms(self) -> int:
        now = datetime.fromtimestamp(self._clock() / 1000, UTC).astimezone(self._zone)
        off = now.utcoffset()
        return int(off.total_seconds() * 1000) if off else 0

    # --- views ---------------------------------------------------------------------------------

    async def ledger(
        self,
        user_id: int,
        *,
        kinds: str | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> Page[EntryRow]:
        wanted: tuple[str, ...] | None = None
        if kinds:
            wanted = tuple(k.strip() for k in kinds.split(",") if k.strip())
            bad = [k for k in wanted if k not in LEDGER_KINDS]
            if bad:
                raise InvalidParameter(
                    f"unknown kind {bad[0]!r}", param="kind", allowed=LEDGER_KINDS
                )
        since, until = self.date_range(date_from, date_to)
        offset, size = page_window(page, page_size)
        rows = await self._repo.entries(
            user_id, kinds=wanted, since=since, until=until, offset=offset, limit=size + 1
        )
        return _paged(rows, page, size)

    def usage_filter(
        self,
        *,
        model: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
    ) -> UsageFilter:
        if kind is not None and kind not in USAGE_KINDS:
            raise InvalidParameter(f"unknown kind {kind!r}", param="kind", allowed=USAGE_KINDS)
        if status is not None and status not in USAGE_STATUSES:
            raise InvalidParameter(
                f"unknown status {status!r}", param="status", allowed=USAGE_STATUSES
            )
        since, until = self.date_range(date_from, date_to)
        return UsageFilter(model=model or None, kind=kind, status=status, since=since, until=until)

    async def usage(
        self, user_id: int, f: UsageFilter, *, page: int = 1, page_size: int = 50
    ) -> Page[UsageRow]:
        offset, size = page_window(page, page_size)
        rows = await self._repo.usage(user_id, f, offset=offset, limit=size + 1)
        return _paged(rows, page, size)

    async def usage_chunks(
        self, user_id: int, f: UsageFilter, chunk: int = 1000
    ) -> AsyncIterator[list[UsageRow]]:
        """Every matching row (up to CSV_MAX_ROWS), newest first, a chunk at a time."""
        offset = 0
        while offset < CSV_MAX_ROWS:
            rows = await self._repo.usage(
                user_id, f, offset=offset, limit=min(chunk, CSV_MAX_ROWS - offset)
            )
            if not rows:
                return
            yield rows
            offset += len(rows)

    async def summary(self, user_id: int, days: int = 30) -> Summary:
        if not 1 <= days <= MAX_DAYS:
            raise InvalidParameter(f"days must be between 1 and {MAX_DAYS}", param="days")
        balance, held = await self._accounts.balance(user_id)
        off = self._offset_ms()
        today = (self._clock() + off) // DAY_MS
        first = today - days + 1
        totals: dict[int, dict[str, int]] = {d: {} for d in range(first, today + 1)}
        for day, kind, total in await self._repo.daily(user_id, first * DAY_MS - off, off):
            if day in totals:
                totals[day][kind] = totals[day].get(kind, 0) + total
        epoch = date(1970, 1, 1)
        series = [
            DayTotals(
                date=(epoch + timedelta(days=d)).isoformat(),
                spend=-(t.get("capture", 0) + t.get("refund", 0)),
                topup=t.get("topup", 0) + t.get("redeem", 0),
                adjust=t.get("adjust", 0),
            )
            for d, t in sorted(totals.items())
        ]
        return Summary(balance, held, await self._repo.open_holds(user_id), series)
