"""A fake Alipay open-platform gateway on loopback, with its own RSA key pair.

It verifies our request signatures with the app's public key exactly as Alipay does (every
parameter but `sign`, empty values dropped, sorted, raw values), answers `alipay.trade.precreate`,
`alipay.trade.query` and the `alipay.trade.page.pay` browser redirect, signs each reply over the
raw text of its `<method>_response` member (written with non-compact spacing, so a client that
re-serialises before verifying fails), and sends async notifies signed with its key to the
notify_url our request named. Tests drive the buyer's side with `pay()` and `notify()`.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from support.servers import free_socket


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _sign(key: rsa.RSAPrivateKey, content: str) -> str:
    return base64.b64encode(
        key.sign(content.encode(), padding.PKCS1v15(), hashes.SHA256())
    ).decode()


@dataclass
class Trade:
    out_trade_no: str
    total_amount: str
    subject: str
    notify_url: str
    method: str
    status: str | None = None  # None: not scanned / not logged in yet (ACQ.TRADE_NOT_EXIST)
    trade_no: str = field(default_factory=lambda: "2025" + secrets.token_hex(10))


@dataclass
class FakeAlipay:
    app_id: str = "2021000000000001"
    seller_id: str = "2088000000000001"
    app_key: rsa.RSAPrivateKey = field(default_factory=new_key)  # the app's pair (ours)
    alipay_key: rsa.RSAPrivateKey = field(default_factory=new_key)  # the gateway's pair
    trades: dict[str, Trade] = field(default_factory=dict)
    calls: list[dict[str, str]] = field(default_factory=list)  # verified requests
    refused: list[dict[str, str]] = field(default_factory=list)  # bad signature / app id
    fail_with_status: int | None = None  # answer every API call with this HTTP status
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/gateway.do", self._gateway)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = free_socket()
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/gateway.do"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    # --- what the app configures ---------------------------------------------------------------

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "alipay_app_id": self.app_id,
            "alipay_seller_id": self.seller_id,
            "alipay_private_key": private_pem(self.app_key),
            "alipay_public_key": public_pem(self.alipay_key),
            "alipay_gateway": self.url,
        }

    # --- the gateway -------------------------------------------------------------------------

    def _verify_request(self, params: dict[str, str]) -> bool:
        content = "&".join(
            f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] != ""
        )
        try:
            self.app_key.public_key().verify(
                base64.b64decode(params.get("sign", "")),
                content.encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except Exception:
            return False
        return params.get("sign_type") == "RSA2" and params.get("app_id") == self.app_id

    def _reply(self, method: str, body: dict[str, Any], *, signed: bool = True) -> web.Response:
        member = method.replace(".", "_") + "_response" if method else "error_response"
        inner = json.dumps(body, ensure_ascii=False)  # ", " and ": ": not our compact form
        text = f'{{"{member}": {inner}'
        if signed:
            text += f', "sign": "{_sign(self.alipay_key, inner)}"'
        text += "}"
        return web.Response(text=text, content_type="application/json", charset="utf-8")

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        params = dict(parse_qsl(request.query_string, keep_blank_values=True))
        if request.method == "POST":
            params.update(parse_qsl(await request.text(), keep_blank_values=True))
        method = params.get("method", "")
        if not self._verify_request(params):
            self.refused.append(params)
            # Alipay answers a bad signature unsigned, under the method's member.
            err = {
                "code": "40002",
                "msg": "Invalid Arguments",
                "sub_code": "isv.invalid-signature",
                "sub_msg": "验签出错",
            }
            if request.method == "GET":
                return web.Response(status=400, text="invalid signature")
            return self._reply(method, err, signed=False)
        self.calls.append(params)
        if self.fail_with_status is not None and request.method == "POST":
            return web.Response(status=self.fail_with_status, text="unavailable")
        biz = json.loads(params.get("biz_content", "{}"))
        if method == "alipay.trade.page.pay" and request.method == "GET":
            self._record(biz, params)
            page = f"<html><body>cashier for {biz['out_trade_no']}</body></html>"
            return web.Response(text=page, content_type="text/html")
        if method == "alipay.trade.precreate":
            self._record(biz, params)
            return self._reply(
                method,
                {
                    "code": "10000",
                    "msg": "Success",
                    "out_trade_no": biz["out_trade_no"],
                    "qr_code": f"https://qr.alipay.com/bax{secrets.token_hex(8)}",
                },
            )
        if method == "alipay.trade.query":
            trade = self.trades.get(biz.get("out_trade_no", ""))
            if trade is None or trade.status is None:
                return self._reply(
                    method,
                    {
                        "code": "40004",
                        "msg": "Business Failed",
                        "sub_code": "ACQ.TRADE_NOT_EXIST",
                        "sub_msg": "交易不存在",
                    },
                )
            return self._reply(
                method,
                {
                    "code": "10000",
                    "msg": "Success",
                    "out_trade_no": trade.out_trade_no,
                    "trade_no": trade.trade_no,
                    "trade_status": trade.status,
                    "total_amount": trade.total_amount,
                    "buyer_logon_id": "tes***@example.com",
                },
            )
        return self._reply(
            method, {"code": "40004", "msg": "Business Failed", "sub_code": "isv.unknown-method"}
        )

    def _record(self, biz: dict[str, Any], params: dict[str, str]) -> None:
        self.trades.setdefault(
            biz["out_trade_no"],
            Trade(
                biz["out_trade_no"],
                biz["total_amount"],
                biz["subject"],
                params.get("notify_url", ""),
                params["method"],
            ),
        )

    # --- the buyer's side --------------------------------------------------------------------

    def pay(self, out_trade_no: str, status: str = "TRADE_SUCCESS") -> Trade:
        trade = self.trades[out_trade_no]
        trade.status = status
        return trade

    def notify_params(
        self, out_trade_no: str, /, *, sign_key: rsa.RSAPrivateKey | None = None, **overrides: str
    ) -> dict[str, str]:
        """A notify as Alipay sends it, signed after `overrides` are applied (so a tampered
        field is validly signed by `sign_key`, by default Alipay's own key)."""
        trade = self.trades[out_trade_no]
        params = {
            "gmt_create": "2025-01-01 12:00:00",
            "charset": "utf-8",
            "gmt_payment": "2025-01-01 12:00:05",
            "notify_time": "2025-01-01 12:00:06",
            "subject": trade.subject,
            "buyer_id": "2088102177846880",
            "invoice_amount": trade.total_amount,
            "version": "1.0",
            "notify_id": secrets.token_hex(16),
            "fund_bill_list": json.dumps(
                [{"amount": trade.total_amount, "fundChannel": "ALIPAYACCOUNT"}],
                separators=(",", ":"),
            ),
            "notify_type": "trade_status_sync",
            "out_trade_no": out_trade_no,
            "total_amount": trade.total_amount,
            "trade_status": trade.status or "WAIT_BUYER_PAY",
            "trade_no": trade.trade_no,
            "auth_app_id": self.app_id,
            "receipt_amount": trade.total_amount,
            "point_amount": "0.00",
            "buyer_pay_amount": trade.total_amount,
            "app_id": self.app_id,
            "seller_id": self.seller_id,
        }
        params.update(overrides)
        content = "&".join(f"{k}={params[k]}" for k in sorted(params))
        params["sign"] = _sign(sign_key or self.alipay_key, content)
        params["sign_type"] = "RSA2"
        return params

    def return_params(
        self, out_trade_no: str, *, sign_key: rsa.RSAPrivateKey | None = None
    ) -> dict[str, str]:
        """The query string Alipay sends the payer back with (signed like a notify)."""
        trade = self.trades[out_trade_no]
        params = {
            "charset": "utf-8",
            "out_trade_no": out_trade_no,
            "method": "alipay.trade.page.pay.return",
            "total_amount": trade.total_amount,
            "trade_no": trade.trade_no,
            "auth_app_id": self.app_id,
            "version": "1.0",
            "app_id": self.app_id,
            "seller_id": self.seller_id,
            "timestamp": "2025-01-01 12:00:07",
        }
        content = "&".join(f"{k}={params[k]}" for k in sorted(params))
        params["sign"] = _sign(sign_key or self.alipay_key, content)
        params["sign_type"] = "RSA2"
        return params

    async def notify(
        self, out_trade_no: str, params: dict[str, str] | None = None, url: str | None = None
    ) -> tuple[int, str]:
        """POST a notify form to the order's notify_url; (status, body) of our answer."""
        body = params if params is not None else self.notify_params(out_trade_no)
        target = url or self.trades[out_trade_no].notify_url
        async with httpx.AsyncClient(timeout=30) as client:
            resp = await client.post(
                target,
                data=body,
                headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
            )
        return resp.status_code, resp.text
