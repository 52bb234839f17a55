"""A fake Aliyun SMS endpoint (dysmsapi SendSms, V3 ACS3-HMAC-SHA256) on loopback.

It checks a request the way the real service does, with its own implementation of the rules
(not llmage's signer): a known AccessKey id, the signature recomputed over the signed headers and
the query as received, `x-acs-content-sha256` against the body, `x-acs-date` within ±15 minutes,
a nonce never seen before, action and version, the required parameters. It keeps the codes it
"sent" for tests, and can be told to answer a provider error instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web

from support.servers import free_socket

_AUTH = re.compile(
    r"ACS3-HMAC-SHA256 Credential=(?P<ak>[^,]+),SignedHeaders=(?P<names>[^,]+),"
    r"Signature=(?P<sig>[0-9a-f]{64})"
)


@dataclass
class Sent:
    phone: str
    code: str
    sign_name: str
    template: str


@dataclass
class FakeAliyunSms:
    access_key_id: str = "LTAI5tFakeAccessKey"
    access_key_secret: str = "fake-access-key-secret"
    sign_name: str = "llmage"
    template_code: str = "SMS_000001"
    sent: list[Sent] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # every error code answered, in order
    fail_with: str | None = None  # answer this provider error instead of sending
    url: str = ""
    _nonces: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = free_socket()
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    def codes_to(self, phone: str) -> list[str]:
        return [s.code for s in self.sent if s.phone == phone]

    def _error(self, status: int, code: str, message: str) -> web.Response:
        self.errors.append(code)
        return web.json_response(
            {"RequestId": secrets.token_hex(8), "Code": code, "Message": message}, status=status
        )

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        m = _AUTH.fullmatch(headers.get("authorization", ""))
        if m is None:
            return self._error(400, "IncompleteSignature", "malformed Authorization header")
        if m["ak"] != self.access_key_id:
            return self._error(404, "InvalidAccessKeyId.NotFound", "unknown AccessKey id")
        names = m["names"].split(";")
        required = {
            "host",
            "x-acs-action",
            "x-acs-version",
            "x-acs-date",
            "x-acs-signature-nonce",
            "x-acs-content-sha256",
        }
        present_acs = {k for k in headers if k.startswith("x-acs-")}
        if not (required | present_acs) <= set(names) or names != sorted(names):
            return self._error(400, "IncompleteSignature", f"signed headers {names}")
        if any(n not in headers for n in names):
            return self._error(400, "IncompleteSignature", "a signed header is missing")
        body_hash = hashlib.sha256(body).hexdigest()
        if headers["x-acs-content-sha256"] != body_hash:
            return self._error(400, "InvalidContentSha256", "body does not match its hash")
        # The query exactly as sent, decoded, then canonicalised by our own rules.
        raw_query = request.rel_url.raw_query_string
        params: dict[str, str] = {}
        for pair in filter(None, raw_query.split("&")):
            k, _, v = pair.partition("=")
            params[unquote(k)] = unquote(v)
        canonical_query = "&".join(
            f"{a}={b}"
            for a, b in sorted(
                (quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in params.items()
            )
        )
        canonical = (
            f"{request.method}\n{request.rel_url.raw_path}\n{canonical_query}\n"
            + "".join(f"{n}:{headers[n].strip()}\n" for n in names)
            + f"\n{';'.join(names)}\n{body_hash}"
        )
        to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
        expected = hmac.new(
            self.access_key_secret.encode(), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, m["sig"]):
            return self._error(400, "SignatureDoesNotMatch", "signature does not match")
        try:
            when = dt.datetime.strptime(headers["x-acs-date"], "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=dt.UTC
            )
        except ValueError:
            return self._error(400, "InvalidTimeStamp.Format", "x-acs-date is not ISO 8601 UTC")
        if abs((dt.datetime.now(dt.UTC) - when).total_seconds()) > 15 * 60:
            return self._error(400, "InvalidTimeStamp.Expired", "x-acs-date outside ±15 min")
        nonce = headers["x-acs-signature-nonce"]
        if nonce in self._nonces:
            return self._error(400, "SignatureNonceUsed", "nonce already used")
        self._nonces.add(nonce)
        if headers["x-acs-action"] != "SendSms":
            return self._error(400, "InvalidAction.NotFound", headers["x-acs-action"])
        if headers["x-acs-version"] != "2017-05-25":
            return self._error(400, "InvalidVersion", headers["x-acs-version"])
        for name in ("PhoneNumbers", "SignName", "TemplateCode", "TemplateParam"):
            if not params.get(name):
                return self._error(400, f"Missing{name}", f"{name} is mandatory")
        if params["SignName"] != self.sign_name:
            return self._error(400, "isv.SMS_SIGNATURE_ILLEGAL", "unknown sign name")
        if params["TemplateCode"] != self.template_code:
            return self._error(400, "isv.SMS_TEMPLATE_ILLEGAL", "unknown template")
        if not re.fullmatch(r"\d{7,15}", params["PhoneNumbers"]):
            return self._error(200, "isv.MOBILE_NUMBER_ILLEGAL", "invalid phone number")
        try:
            template: Any = json.loads(params["TemplateParam"])
            code = str(template["code"])
        except (ValueError, KeyError, TypeError):
            return self._error(200, "isv.TEMPLATE_PARAMS_ILLEGAL", "TemplateParam needs code")
        if self.fail_with:
            return self._error(200, self.fail_with, "refused as told")
        self.sent.append(
            Sent(params["PhoneNumbers"], code, params["SignName"], params["TemplateCode"])
        )
        return web.json_response(
            {
                "Code": "OK",
                "Message": "OK",
                "BizId": secrets.token_hex(10),
                "RequestId": secrets.token_hex(8),
            }
        )
