"""Volcengine V4 request signing (HMAC-SHA256), PROVIDERS.md §7.

Canonical request = method, path, sorted URI-encoded query, canonical headers (each
`name:value\n`, sorted; hence an empty line before the signed-header list), signed headers, body
hash. String to sign = `HMAC-SHA256`, X-Date, scope `<date>/<region>/<service>/request`, hex
SHA-256 of the canonical request. The key chain starts from the bare secret key (no prefix,
unlike AWS). Pure functions: the caller passes the time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote, unquote_plus, urlsplit

ALGORITHM = "HMAC-SHA256"
REGION = "cn-north-1"
SERVICE = "cv"
SIGNED = ("content-type", "host", "x-content-sha256", "x-date")


def x_date(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _enc(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_query(query: str) -> str:
    pairs: list[tuple[str, str]] = []
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((_enc(unquote_plus(key)), _enc(unquote_plus(value))))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def host_of(url: str) -> str:
    """The Host header the transport sends for `url` (providers/http1.py): the host name, with
    the port only when the URL names one. The signature must cover exactly that value."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return host if parts.port is None else f"{host}:{parts.port}"


def canonical_request(
    method: str, path: str, query: str, headers: Mapping[str, str], signed: tuple[str, ...]
) -> str:
    low = {k.lower(): v.strip() for k, v in headers.items()}
    block = "".join(f"{name}:{low.get(name, '')}\n" for name in signed)
    return "\n".join(
        [
            method.upper(),
            path or "/",
            canonical_query(query),
            block,
            ";".join(signed),
            low.get("x-content-sha256", ""),
        ]
    )


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signature(
    secret_key: str,
    date_time: str,
    canonical: str,
    region: str = REGION,
    service: str = SERVICE,
) -> str:
    date = date_time[:8]
    scope = f"{date}/{region}/{service}/request"
    to_sign = "\n".join(
        [ALGORITHM, date_time, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(secret_key.encode(), date)
    for step in (region, service, "request"):
        key = _hmac(key, step)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def sign_headers(
    method: str,
    url: str,
    body: bytes,
    access_key: str,
    secret_key: str,
    now: float,
    content_type: str = "application/json",
) -> dict[str, str]:
    """X-Date, X-Content-Sha256, Content-Type and Authorization for one request. `Host` is
    signed but not returned: the transport writes it from the URL (a second one is refused)."""
    parts = urlsplit(url)
    date_time = x_date(now)
    headers = {
        "Content-Type": content_type,
        "Host": host_of(url),
        "X-Content-Sha256": body_hash(body),
        "X-Date": date_time,
    }
    canonical = canonical_request(method, parts.path or "/", parts.query, headers, SIGNED)
    sig = signature(secret_key, date_time, canonical)
    scope = f"{date_time[:8]}/{REGION}/{SERVICE}/request"
    del headers["Host"]
    headers["Authorization"] = (
        f"{ALGORITHM} Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(SIGNED)}, Signature={sig}"
    )
    return headers
