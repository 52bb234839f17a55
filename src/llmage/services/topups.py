"""Top-up with Alipay: create an order, send the payer to Alipay, credit once when it is paid.

Three paths can learn that an order was paid: Alipay's async notify, the payer coming back to the
return page (we then query the trade), and the pending-order job that queries orders whose notify
never came. All three end in `TopupRepo.mark_paid`, which credits at most once whatever arrives
how often. Nothing is believed before its signature verifies, and a payment is credited only if
its amount, seller and app are exactly ours.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from llmage.auth.throttle import Rule, Throttle
from llmage.billing import alipay
from llmage.billing.alipay import AlipayConfig
from llmage.billing.alipay_client import AlipayClient, AlipayRefused, AlipayUnavailable, TradeState
from llmage.db.repos.topups import TopupOrder as TopupOrder  # re-exported for the console
from llmage.db.repos.topups import TopupRepo
from llmage.domain.clock import now_ms
from llmage.domain.errors import InvalidParameter, LlmageError, NotFound, TooManyAttempts
from llmage.domain.money import parse_amount
from llmage.services.background import BackgroundLoop
from llmage.settings import Settings

log = logging.getLogger(__name__)

METHODS = ("alipay_page", "alipay_qr")
ORDER_STATUSES = ("pending", "paid", "closed")
NOTIFY_PATH = "/api/payments/alipay/notify"
RETURN_PATH = "/api/payments/alipay/return"
# After time_expire Alipay refuses payment; we wait this much longer before closing an order
# Alipay says does not exist, so a payment made at the last second is still found.
CLOSE_GRACE_MS = 5 * 60_000
# An order Alipay still calls WAIT_BUYER_PAY this long after expiry is closed locally (a later
# verified payment of it is still credited: paid beats closed).
STALE_MS = 24 * 3600_000
# New orders per user (each may cost a call to Alipay): a burst, and a day's worth.
CREATE_RULES = (Rule(10, 600), Rule(100, 86400))


class TopupUnavailable(LlmageError):
    status = 503
    type = "server_error"
    code = "topup_unavailable"


def alipay_config(s: Settings, base_url: str) -> AlipayConfig | None:
    """Alipay settings as a config, or None when top-up is not configured (no app id)."""
    if not s.alipay_app_id:
        return None
    missing = [
        name
        for name, value in (
            ("LLMAGE_ALIPAY_SELLER_ID", s.alipay_seller_id),
            ("LLMAGE_ALIPAY_PRIVATE_KEY", s.alipay_private_key),
            ("LLMAGE_ALIPAY_PUBLIC_KEY", s.alipay_public_key),
        )
        if not value
    ]
    if missing:
        raise ValueError(f"LLMAGE_ALIPAY_APP_ID is set but {', '.join(missing)} is not")
    assert s.alipay_seller_id and s.alipay_private_key and s.alipay_public_key
    try:
        private = alipay.load_private_key(s.alipay_private_key.get_secret_value())
    except ValueError as exc:
        raise ValueError(f"LLMAGE_ALIPAY_PRIVATE_KEY: {exc}") from None
    try:
        public = alipay.load_public_key(s.alipay_public_key)
    except ValueError as exc:
        raise ValueError(f"LLMAGE_ALIPAY_PUBLIC_KEY: {exc}") from None
    base = base_url.rstrip("/")
    return AlipayConfig(
        app_id=s.alipay_app_id,
        seller_id=s.alipay_seller_id,
        private_key=private,
        alipay_public_key=public,
        gateway=s.alipay_gateway,
        notify_url=base + NOTIFY_PATH,
        return_url=base + RETURN_PATH,
    )


def new_order_no(now: int) -> str:
    """`LM` + Beijing date-time + 14 random characters: unique, sortable, ≤ 64 characters."""
    stamp = datetime.fromtimestamp(now / 1000, UTC).astimezone(alipay.BEIJING)
    return "LM" + stamp.strftime("%Y%m%d%H%M%S") + secrets.token_hex(7)


@dataclass(frozen=True, slots=True)
class NewTopup:
    order: TopupOrder
    pay_url: str | None  # alipay_page: where to send the browser
    qr_code: str | None  # alipay_qr: the content to render as a QR code


class TopupService:
    def __init__(
        self,
        repo: TopupRepo,
        client: AlipayClient | None,
        *,
        subject: str,
        order_ttl_seconds: int,
        check_interval_seconds: float,
        min_amount: str,
        max_amount: str,
        clock: Callable[[], int] = now_ms,
        throttle: Throttle | None = None,
    ) -> None:
        if not 0 < len(subject) <= 128 or any(ch in subject for ch in "/=&"):
            # Alipay refuses / = & in a subject; the order table keeps 128 characters.
            raise ValueError("LLMAGE_ALIPAY_SUBJECT: 1-128 characters, without / = &")
        self._repo = repo
        self._client = client
        self._throttle = throttle or Throttle()
        self._subject = subject
        self._ttl_ms = int(order_ttl_seconds * 1000)
        self._interval_ms = max(1, int(check_interval_seconds * 1000))
        self._min = parse_amount(min_amount)
        self._max = parse_amount(max_amount)
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return self._client is not None

    def _alipay(self) -> AlipayClient:
        if self._client is None:
            raise TopupUnavailable("online top-up is not configured on this server")
        return self._client

    # --- creating and reading orders -----------------------------------------------------------

    def check_amount(self, micros: int) -> None:
        lo, hi = max(self._min, alipay.MIN_MICROS), min(self._max, alipay.MAX_MICROS)
        if micros % (alipay.MIN_MICROS):
            raise InvalidParameter(
                "amount must be a whole number of fen (2 decimals)", param="amount"
            )
        if not lo <= micros <= hi:
            raise InvalidParameter(
                f"amount must be between {alipay.yuan(lo)} and {alipay.yuan(hi)}", param="amount"
            )

    async def create(self, user_id: int, micros: int, method: str) -> NewTopup:
        client = self._alipay()
        if method not in METHODS:
            raise InvalidParameter(f"unknown method {method!r}", param="method", allowed=METHODS)
        self.check_amount(micros)
        key = f"topup:user:{user_id}"
        wait = self._throttle.retry_after(key, CREATE_RULES)
        if wait is not None:
            raise TooManyAttempts(
                f"Too many top-up orders; try again in {max(1, int(wait + 0.999))} s",
                retry_after=wait,
            )
        self._throttle.record(key, CREATE_RULES)
        now = self._clock()
        order = TopupOrder(
            out_trade_no=new_order_no(now),
            user_id=user_id,
            amount=micros,
            method=method,
            status="pending",
            subject=self._subject,
            qr_code=None,
            trade_no=None,
            created_at=now,
            updated_at=now,
            expires_at=now + self._ttl_ms,
            paid_at=None,
            closed_at=None,
            checks=0,
            next_check_at=now + self._interval_ms,
        )
        await self._repo.create(order)
        if method == "alipay_page":
            return NewTopup(order, self.pay_url(order, now), None)
        try:
            qr = await client.precreate(
                order.out_trade_no, micros, order.subject, now_ms=now, expire_ms=order.expires_at
            )
        except AlipayRefused as exc:
            await self._repo.close(order.out_trade_no, self._clock())
            log.warning("alipay refused precreate %s: %s", order.out_trade_no, exc)
            raise TopupUnavailable(f"Alipay refused the order: {exc.sub_msg or exc.code}") from None
        except AlipayUnavailable as exc:
            # The order may exist at Alipay: it stays pending and the job finds out.
            log.warning("alipay precreate %s failed: %s", order.out_trade_no, exc)
            raise TopupUnavailable("Alipay cannot be reached now; try again later") from None
        await self._repo.set_qr(order.out_trade_no, qr, self._clock())
        return NewTopup(replace(order, qr_code=qr), None, qr)

    def pay_url(self, order: TopupOrder, now: int | None = None) -> str | None:
        """A freshly signed page-pay URL for a pending, unexpired page-pay order."""
        now = self._clock() if now is None else now
        if order.method != "alipay_page" or order.status != "pending" or now >= order.expires_at:
            return None
        cfg = self._alipay().cfg
        return alipay.page_pay_url(
            cfg,
            order.out_trade_no,
            order.amount,
            order.subject,
            now_ms=now,
            expire_ms=order.expires_at,
        )

    async def get(self, user_id: int | None, out_trade_no: str) -> TopupOrder:
        """An order of `user_id` (any user's when None); another user's order is a 404."""
        order = await self._repo.get(out_trade_no)
        if order is None or (user_id is not None and order.user_id != user_id):
            raise NotFound(f"no order {out_trade_no!r}", param="out_trade_no")
        return order

    async def page(
        self, *, user_id: int | None, status: str | None, offset: int, limit: int
    ) -> list[tuple[TopupOrder, str]]:
        if status is not None and status not in ORDER_STATUSES:
            raise InvalidParameter(
                f"unknown status {status!r}", param="status", allowed=ORDER_STATUSES
            )
        return await self._repo.page(user_id=user_id, status=status, offset=offset, limit=limit)

    # --- learning that an order was paid -------------------------------------------------------

    async def handle_notify(self, params: Mapping[str, str]) -> bool:
        """Alipay's async notify. True means: answer `success` (it was credited now or before,
        or it closed a pending order); False: answer anything else (Alipay retries)."""
        client = self._alipay()
        cfg = client.cfg
        no = params.get("out_trade_no", "")
        if not alipay.verify_notify(cfg.alipay_public_key, params):
            log.warning("alipay notify for %r: bad signature", no)
            return False
        if params.get("app_id") != cfg.app_id or params.get("seller_id") != cfg.seller_id:
            log.warning("alipay notify for %r: not our app or seller", no)
            return False
        order = await self._repo.get(no)
        if order is None:
            log.warning("alipay notify for unknown order %r", no)
            return False
        if alipay.parse_yuan(params.get("total_amount", "")) != order.amount:
            log.error(
                "alipay notify for %s: total_amount %r is not the order's",
                no,
                params.get("total_amount"),
            )
            return False
        status = params.get("trade_status")
        if status in alipay.PAID_STATUSES:
            await self._pay(order, params.get("trade_no"))
            return True
        if status == "TRADE_CLOSED":
            if order.status == "paid":
                log.warning("alipay says paid order %s is closed (refunded?)", no)
            else:
                await self._repo.close(no, self._clock())
            return True
        return False  # WAIT_BUYER_PAY or anything new: nothing to do yet

    async def _pay(self, order: TopupOrder, trade_no: str | None) -> None:
        if await self._repo.mark_paid(order, trade_no, self._clock()):
            log.info(
                "top-up %s paid: user %d credited %d",
                order.out_trade_no,
                order.user_id,
                order.amount,
            )

    async def check(self, order: TopupOrder, now: int | None = None) -> str:
        """Ask Alipay about one pending order and act on the answer; returns what happened."""
        client = self._alipay()
        now = self._clock() if now is None else now
        try:
            state = await client.query(order.out_trade_no, now_ms=now)
        except (AlipayUnavailable, AlipayRefused) as exc:
            log.warning("alipay query %s failed: %s", order.out_trade_no, exc)
            await self._reschedule(order, now)
            return "error"
        return await self._apply(order, state, now)

    async def _apply(self, order: TopupOrder, state: TradeState, now: int) -> str:
        if state.status in alipay.PAID_STATUSES:
            if state.total_micros != order.amount:
                log.error(
                    "alipay query %s: paid amount %r is not the order's %d",
                    order.out_trade_no,
                    state.total_micros,
                    order.amount,
                )
                await self._reschedule(order, now)
                return "mismatch"
            await self._pay(order, state.trade_no)
            return "paid"
        expired = now - order.expires_at
        if (
            state.status == "TRADE_CLOSED"
            or (state.status is None and expired >= CLOSE_GRACE_MS)
            or expired >= STALE_MS
        ):
            await self._repo.close(order.out_trade_no, now)
            return "closed"
        await self._reschedule(order, now)
        return "pending"

    async def _reschedule(self, order: TopupOrder, now: int) -> None:
        # Soon after creation the payer is most likely paying: query often, then back off.
        delay = self._interval_ms * min(2 ** min(order.checks, 4), 16)
        await self._repo.reschedule(order.out_trade_no, now + delay, now)

    async def refresh(self, out_trade_no: str) -> TopupOrder | None:
        """Query a pending order now (the payer just came back from Alipay)."""
        order = await self._repo.get(out_trade_no)
        if order is None or order.status != "pending" or self._client is None:
            return order
        await self.check(order)
        return await self._repo.get(out_trade_no)

    def verify_return(self, params: Mapping[str, str]) -> bool:
        """The return page's query string is signed like a notify."""
        cfg = self._alipay().cfg
        return (
            alipay.verify_notify(cfg.alipay_public_key, params)
            and params.get("app_id") == cfg.app_id
        )

    async def run_due(self, now: int | None = None, limit: int = 100) -> int:
        """Query every pending order whose check is due (a few at a time); returns how many."""
        now = self._clock() if now is None else now
        orders = await self._repo.due(now, limit)
        slots = asyncio.Semaphore(4)

        async def one(order: TopupOrder) -> None:
            async with slots:
                await self.check(order, now)

        await asyncio.gather(*(one(o) for o in orders))
        return len(orders)


class PendingTopupJob(BackgroundLoop):
    """Queries pending orders whose notify has not come (it may never: a firewall, an outage)."""

    name = "topup-checker"

    def __init__(self, service: TopupService, interval_seconds: float) -> None:
        super().__init__()
        self._service = service
        self._interval = interval_seconds

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._service.run_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pending top-up check failed")
