"""Aliyun SMS (dysmsapi `SendSms`, version 2017-05-25) with V3 `ACS3-HMAC-SHA256` signing.

The signing is pure (`sign`), the sender one httpx call: the official SDK is ~68 MB of
dependencies for what fits here.

Canonical request (all hex lower-case):

    POST \n / \n <query: RFC 3986-encoded k=v, sorted, joined by &> \n
    <lower-case signed header>:<trimmed value>\n  (one per signed header, sorted) \n
    <signed header names joined by ;> \n <hex SHA-256 of the body>

String to sign: `ACS3-HMAC-SHA256\n<hex SHA-256 of the canonical request>`; the signature is the
hex HMAC-SHA256 of it under the AccessKey secret, sent as
`Authorization: ACS3-HMAC-SHA256 Credential=<AK id>,SignedHeaders=<names>,Signature=<hex>`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

import httpx
import orjson

from llmage.settings import Settings
from llmage.sms.sender import SmsFailed

ALGORITHM = "ACS3-HMAC-SHA256"
ACTION = "SendSms"
VERSION = "2017-05-25"


def _encode(text: str) -> str:
    # RFC 3986: only unreserved characters stay; space is %20, never '+'.
    return quote(text, safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    pairs = sorted((_encode(k), _encode(v)) for k, v in params.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_request(
    method: str, query: str, headers: Mapping[str, str], body_sha256: str
) -> tuple[str, str]:
    """(canonical request, signed header names) over every `host`, `content-type` and
    `x-acs-*` header given."""
    signed = sorted(
        (k.lower(), v.strip())
        for k, v in headers.items()
        if k.lower() in ("host", "content-type") or k.lower().startswith("x-acs-")
    )
    names = ";".join(k for k, _ in signed)
    header_block = "".join(f"{k}:{v}\n" for k, v in signed)
    return f"{method}\n/\n{query}\n{header_block}\n{names}\n{body_sha256}", names


def sign(
    *,
    access_key_id: str,
    access_key_secret: str,
    host: str,
    params: Mapping[str, str],
    body: bytes = b"",
    action: str = ACTION,
    version: str = VERSION,
    now: dt.datetime | None = None,
    nonce: str | None = None,
) -> tuple[str, dict[str, str]]:
    """The canonical query string and the headers (Authorization included) of one request."""
    when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    body_hash = hashlib.sha256(body).hexdigest()
    headers = {
        "host": host,
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": nonce or secrets.token_hex(16),
        "x-acs-content-sha256": body_hash,
    }
    query = canonical_query(params)
    request, names = canonical_request("POST", query, headers, body_hash)
    to_sign = f"{ALGORITHM}\n{hashlib.sha256(request.encode()).hexdigest()}"
    signature = hmac.new(access_key_secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"{ALGORITHM} Credential={access_key_id},SignedHeaders={names},Signature={signature}"
    )
    return query, headers


class AliyunSmsSender:
    name = "aliyun"

    def __init__(
        self,
        *,
        endpoint: str,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        template_code: str,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._host = urlsplit(self._endpoint).netloc
        self._ak = access_key_id
        self._secret = access_key_secret
        self._sign_name = sign_name
        self._template = template_code
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport)

    @classmethod
    def from_settings(cls, s: Settings) -> AliyunSmsSender:
        missing = [
            name
            for name, value in (
                ("LLMAGE_SMS_ALIYUN_ACCESS_KEY_ID", s.sms_aliyun_access_key_id),
                ("LLMAGE_SMS_ALIYUN_ACCESS_KEY_SECRET", s.sms_aliyun_access_key_secret),
                ("LLMAGE_SMS_ALIYUN_SIGN_NAME", s.sms_aliyun_sign_name),
                ("LLMAGE_SMS_ALIYUN_TEMPLATE_CODE", s.sms_aliyun_template_code),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"LLMAGE_SMS_BACKEND=aliyun needs {', '.join(missing)}")
        assert s.sms_aliyun_access_key_secret is not None
        return cls(
            endpoint=s.sms_aliyun_endpoint,
            access_key_id=s.sms_aliyun_access_key_id or "",
            access_key_secret=s.sms_aliyun_access_key_secret.get_secret_value(),
            sign_name=s.sms_aliyun_sign_name or "",
            template_code=s.sms_aliyun_template_code or "",
        )

    async def send_code(self, phone: str, code: str) -> None:
        params = {
            # Aliyun takes mainland numbers bare and others with their country code, no '+'.
            "PhoneNumbers": phone.removeprefix("+"),
            "SignName": self._sign_name,
            "TemplateCode": self._template,
            "TemplateParam": orjson.dumps({"code": code}).decode(),
        }
        query, headers = sign(
            access_key_id=self._ak,
            access_key_secret=self._secret,
            host=self._host,
            params=params,
        )
        try:
            resp = await self._client.post(f"{self._endpoint}/?{query}", headers=headers)
        except httpx.HTTPError as exc:
            raise SmsFailed(
                "unreachable", f"Aliyun SMS not reachable: {type(exc).__name__}"
            ) from exc
        try:
            answer = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if resp.status_code == 200 and answer.get("Code") == "OK":
            return
        raise SmsFailed(
            str(answer.get("Code") or f"HTTP {resp.status_code}"),
            str(answer.get("Message") or "SendSms failed"),
        )

    async def close(self) -> None:
        await self._client.aclose()
