"""Alipay open-platform protocol (RSA2), with no IO: sign requests, verify notifies and replies.

Three different strings get signed or verified, and mixing them up is the classic integration bug:

- a request we send: every parameter but `sign` (`sign_type` included), empty values dropped,
  keys sorted by code point, `k=v` joined by `&` with raw (not URL-encoded) values;
- an async notify Alipay sends: every parameter but `sign` AND `sign_type`, values as decoded from
  the form, sorted, joined the same way (empty values kept: Alipay's own V1 check keeps them);
- a synchronous reply: the raw JSON text of its `<method>_response` member exactly as received,
  never a re-serialisation (key order, spacing and escapes would differ).

RSA2 is RSASSA-PKCS1-v1_5 over SHA-256, base64-encoded. Keys come as PEM, as the bare base64 body
Alipay's key tool prints, or as a path to either. Amounts on the wire are yuan with two decimals;
in llmage they are integer micro-units, converted here exactly (never through a float).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from llmage.domain.money import MICROS_PER_UNIT

# Alipay's timestamps and time_expire are Beijing time whatever the server's zone.
BEIJING = timezone(timedelta(hours=8), "GMT+8")
SUCCESS_CODE = "10000"
PAID_STATUSES = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
TRADE_STATUSES = ("WAIT_BUYER_PAY", "TRADE_CLOSED", "TRADE_SUCCESS", "TRADE_FINISHED")
MIN_MICROS = MICROS_PER_UNIT // 100  # 0.01 yuan
MAX_MICROS = 100_000_000 * MICROS_PER_UNIT
_FEN = MICROS_PER_UNIT // 100


class AlipayProtocolError(Exception):
    """A reply that is not what the protocol promises: unsigned, badly signed or malformed."""


# --- keys --------------------------------------------------------------------------------------


def _key_text(value: str) -> str:
    """PEM text or a bare base64 body, read from a file when `value` names one."""
    value = value.strip()
    if "-----BEGIN" in value:
        return value
    try:
        path = Path(value).expanduser()
        if path.is_file():
            return path.read_text().strip()
    except OSError:  # a long base64 body is no file name
        pass
    return value


def _der(text: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except binascii.Error as exc:
        raise ValueError("key is neither PEM nor base64 DER") from exc


def load_private_key(value: str) -> rsa.RSAPrivateKey:
    """The app's private key: PEM (PKCS#1 or PKCS#8), bare base64 of either, or a path."""
    text = _key_text(value)
    if "-----BEGIN" in text:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    else:
        key = serialization.load_der_private_key(_der(text), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the Alipay app private key must be an RSA key")
    return key


def load_public_key(value: str) -> rsa.RSAPublicKey:
    """Alipay's public key: PEM, bare base64 of the SubjectPublicKeyInfo, or a path."""
    text = _key_text(value)
    if "-----BEGIN" in text:
        key = serialization.load_pem_public_key(text.encode())
    else:
        key = serialization.load_der_public_key(_der(text))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the Alipay public key must be an RSA key")
    return key


# --- signatures --------------------------------------------------------------------------------


def sign_content(params: Mapping[str, str]) -> str:
    """What a request signs: all but `sign`, empty values dropped, sorted, raw `k=v&k=v`."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")


def notify_content(params: Mapping[str, str]) -> str:
    """What a notify signs: all but `sign` and `sign_type`, sorted, raw `k=v&k=v`."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in ("sign", "sign_type"))


def rsa2_sign(key: rsa.RSAPrivateKey, content: str) -> str:
    return base64.b64encode(
        key.sign(content.encode(), padding.PKCS1v15(), hashes.SHA256())
    ).decode()


def rsa2_verify(key: rsa.RSAPublicKey, content: str, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
        key.verify(raw, content.encode(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def verify_notify(key: rsa.RSAPublicKey, params: Mapping[str, str]) -> bool:
    """True only for a notify signed by Alipay with RSA2 over exactly these parameters."""
    sign = params.get("sign")
    if not sign or params.get("sign_type", "RSA2") != "RSA2":
        return False
    return rsa2_verify(key, notify_content(params), sign)


# --- amounts and times -------------------------------------------------------------------------


def yuan(micros: int) -> str:
    """12_340_000 -> '12.34'. Only whole fen can be paid: anything finer is a bug upstream of us."""
    if micros % _FEN:
        raise ValueError(f"{micros} micro-units is not a whole number of fen")
    whole, fen = divmod(micros // _FEN, 100)
    return f"{whole}.{fen:02d}"


_YUAN = re.compile(r"(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,2})?")


def parse_yuan(text: str) -> int | None:
    """'12.34' -> 12_340_000; None for anything but a plain non-negative amount of whole fen."""
    if not isinstance(text, str) or not _YUAN.fullmatch(text):
        return None
    return int(Decimal(text) * MICROS_PER_UNIT)


def beijing_time(epoch_ms: int) -> str:
    """`yyyy-MM-dd HH:mm:ss` in GMT+8, the format of `timestamp` and `time_expire`."""
    return (
        datetime.fromtimestamp(epoch_ms / 1000, UTC)
        .astimezone(BEIJING)
        .strftime("%Y-%m-%d %H:%M:%S")
    )


# --- requests ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlipayConfig:
    app_id: str
    seller_id: str
    private_key: rsa.RSAPrivateKey
    alipay_public_key: rsa.RSAPublicKey
    gateway: str
    notify_url: str
    return_url: str


def compact_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def signed_request(
    cfg: AlipayConfig,
    method: str,
    biz: Mapping[str, object],
    *,
    now_ms: int,
    with_return_url: bool = False,
) -> dict[str, str]:
    """The full, signed parameter set of one API call (page pay, precreate, query)."""
    params = {
        "app_id": cfg.app_id,
        "method": method,
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": beijing_time(now_ms),
        "version": "1.0",
        "notify_url": cfg.notify_url,
        "biz_content": compact_json(biz),
    }
    if with_return_url:
        params["return_url"] = cfg.return_url
    params["sign"] = rsa2_sign(cfg.private_key, sign_content(params))
    return params


def trade_biz(
    out_trade_no: str, micros: int, subject: str, expire_ms: int | None
) -> dict[str, str]:
    biz = {"out_trade_no": out_trade_no, "total_amount": yuan(micros), "subject": subject}
    if expire_ms is not None:
        biz["time_expire"] = beijing_time(expire_ms)
    return biz


def page_pay_url(
    cfg: AlipayConfig,
    out_trade_no: str,
    micros: int,
    subject: str,
    *,
    now_ms: int,
    expire_ms: int | None,
) -> str:
    """Where to send the browser for `alipay.trade.page.pay`: the gateway with signed params."""
    biz = {
        **trade_biz(out_trade_no, micros, subject, expire_ms),
        "product_code": "FAST_INSTANT_TRADE_PAY",
    }
    params = signed_request(cfg, "alipay.trade.page.pay", biz, now_ms=now_ms, with_return_url=True)
    return f"{cfg.gateway}?{urlencode(params)}"


# --- synchronous replies -----------------------------------------------------------------------


def _top_level_members(raw: str) -> dict[str, tuple[int, int]]:
    """Span of each top-level member's value in a JSON object text, found by decoding it
    piece by piece (a key text appearing inside a string value cannot fool it)."""
    dec = json.JSONDecoder()
    spans: dict[str, tuple[int, int]] = {}
    i = _skip_ws(raw, 0)
    if raw[i : i + 1] != "{":
        raise AlipayProtocolError("reply is not a JSON object")
    i = _skip_ws(raw, i + 1)
    if raw[i : i + 1] == "}":
        return spans
    while True:
        key, i = dec.raw_decode(raw, i)
        if not isinstance(key, str):
            raise AlipayProtocolError("reply has a non-string key")
        i = _skip_ws(raw, i)
        if raw[i : i + 1] != ":":
            raise AlipayProtocolError("reply is not valid JSON")
        start = _skip_ws(raw, i + 1)
        _, end = dec.raw_decode(raw, start)
        spans[key] = (start, end)
        i = _skip_ws(raw, end)
        if raw[i : i + 1] == "}":
            return spans
        if raw[i : i + 1] != ",":
            raise AlipayProtocolError("reply is not valid JSON")
        i = _skip_ws(raw, i + 1)


def _skip_ws(raw: str, i: int) -> int:
    while i < len(raw) and raw[i] in " \t\r\n":
        i += 1
    return i


@dataclass(frozen=True, slots=True)
class Reply:
    body: dict[str, object]
    signed: bool  # False only for an unsigned error reply: never act on it beyond "try later"

    @property
    def ok(self) -> bool:
        return self.signed and self.body.get("code") == SUCCESS_CODE


def verified_reply(key: rsa.RSAPublicKey, method: str, raw: str) -> Reply:
    """The `<method>_response` member of a synchronous reply, with `sign` checked over its raw
    text. Gateway-level errors (a bad app id, our own signature refused) may come unsigned: they
    are returned marked unsigned; an unsigned success, or any bad signature, raises."""
    try:
        spans = _top_level_members(raw)
        doc = json.loads(raw)
    except (ValueError, IndexError) as exc:
        raise AlipayProtocolError(f"reply is not valid JSON: {exc}") from exc
    member = method.replace(".", "_") + "_response"
    name = member if member in spans else "error_response" if "error_response" in spans else None
    if name is None:
        raise AlipayProtocolError(f"reply has no {member}")
    body = doc[name]
    if not isinstance(body, dict):
        raise AlipayProtocolError(f"{name} is not an object")
    sign = doc.get("sign")
    if isinstance(sign, str) and sign:
        start, end = spans[name]
        if not rsa2_verify(key, raw[start:end], sign):
            raise AlipayProtocolError(f"{name} signature does not verify")
        return Reply(body, signed=True)
    if body.get("code") == SUCCESS_CODE:
        raise AlipayProtocolError(f"{name} claims success but is not signed")
    return Reply(body, signed=False)
