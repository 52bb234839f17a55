"""Calls to the Alipay gateway: `alipay.trade.precreate` (QR) and `alipay.trade.query`.

The protocol (signing, reply verification) is in alipay.py; this module only moves bytes. Every
call has a total deadline, and a reply is trusted only after its signature verifies over the raw
text. The gateway URL comes from settings only.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from llmage.billing import alipay
from llmage.billing.alipay import AlipayConfig, AlipayProtocolError


class AlipayUnavailable(Exception):
    """The gateway could not be reached or answered nonsense: try again later."""


class AlipayRefused(Exception):
    """A signed, well-formed refusal (code other than 10000)."""

    def __init__(self, code: str, msg: str, sub_code: str, sub_msg: str) -> None:
        super().__init__(f"{code} {msg}: {sub_code} {sub_msg}".strip())
        self.code = code
        self.sub_code = sub_code
        self.sub_msg = sub_msg


@dataclass(frozen=True, slots=True)
class TradeState:
    """What `alipay.trade.query` says of one of our orders; `status` None: no such trade yet
    (the buyer has not scanned or logged in), which Alipay reports as ACQ.TRADE_NOT_EXIST."""

    status: str | None
    out_trade_no: str
    trade_no: str | None = None
    total_micros: int | None = None


class AlipayClient:
    def __init__(self, cfg: AlipayConfig, *, timeout: float = 15.0) -> None:
        self.cfg = cfg
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=5.0))

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, biz: dict[str, str], now_ms: int) -> alipay.Reply:
        params = alipay.signed_request(self.cfg, method, biz, now_ms=now_ms)
        try:
            resp = await self._http.post(
                self.cfg.gateway,
                data=params,
                headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
            )
        except httpx.HTTPError as exc:
            raise AlipayUnavailable(f"{method}: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise AlipayUnavailable(f"{method}: HTTP {resp.status_code}")
        try:
            return alipay.verified_reply(self.cfg.alipay_public_key, method, resp.text)
        except AlipayProtocolError as exc:
            raise AlipayUnavailable(f"{method}: {exc}") from exc

    @staticmethod
    def _refusal(reply: alipay.Reply) -> AlipayRefused:
        b = reply.body
        return AlipayRefused(
            str(b.get("code", "")),
            str(b.get("msg", "")),
            str(b.get("sub_code", "")),
            str(b.get("sub_msg", "")),
        )

    async def precreate(
        self, out_trade_no: str, micros: int, subject: str, *, now_ms: int, expire_ms: int | None
    ) -> str:
        """The QR code content for a new order (render it, do not fetch it)."""
        biz = alipay.trade_biz(out_trade_no, micros, subject, None)
        if expire_ms is not None:
            # precreate takes a relative timeout (whole minutes), not page pay's time_expire.
            biz["timeout_express"] = f"{max(1, (expire_ms - now_ms) // 60_000)}m"
        reply = await self._call("alipay.trade.precreate", biz, now_ms)
        if not reply.ok:
            raise self._refusal(reply)
        qr = reply.body.get("qr_code")
        if not isinstance(qr, str) or not qr or reply.body.get("out_trade_no") != out_trade_no:
            raise AlipayUnavailable("alipay.trade.precreate: reply lacks qr_code or order number")
        return qr

    async def query(self, out_trade_no: str, *, now_ms: int) -> TradeState:
        reply = await self._call("alipay.trade.query", {"out_trade_no": out_trade_no}, now_ms)
        b = reply.body
        if not reply.ok:
            if reply.signed and b.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
                return TradeState(None, out_trade_no)
            raise self._refusal(reply)
        if b.get("out_trade_no") != out_trade_no:
            raise AlipayUnavailable("alipay.trade.query: reply is about another order")
        status = b.get("trade_status")
        if status not in alipay.TRADE_STATUSES:
            raise AlipayUnavailable(f"alipay.trade.query: unknown trade_status {status!r}")
        amount = b.get("total_amount")
        trade_no = b.get("trade_no")
        return TradeState(
            str(status),
            out_trade_no,
            trade_no=trade_no if isinstance(trade_no, str) else None,
            total_micros=alipay.parse_yuan(amount) if isinstance(amount, str) else None,
        )
