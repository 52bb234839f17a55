"""Opaque, signed, expiring media links: `/media/<token>`.

token = base64url(payload JSON) "." base64url(HMAC-SHA256(secret, payload part)). The payload
names the storage key, the content type and download filename to serve, and the expiry; nothing
in a link is a path and nothing can be changed without the secret. The secret is passed in as
bytes: the platform derives it from the deployment key (CredentialBox.derive("media"))
or takes the `media_secret` setting.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from dataclasses import dataclass

import orjson

MAX_TOKEN_LENGTH = 2048
_CONTENT_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9.+\-]*/[a-z0-9][a-z0-9.+\-]*")
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._\-]+")


class MediaTokenError(ValueError):
    """The link is malformed, forged or expired; the message says which (never the secret)."""


@dataclass(frozen=True, slots=True)
class MediaGrant:
    key: str
    content_type: str
    filename: str
    expires: int  # unix seconds


def safe_filename(name: str) -> str:
    """A filename that is safe in a Content-Disposition header on every browser."""
    cleaned = _UNSAFE_FILENAME.sub("_", name).strip("._")[:120]
    return cleaned or "media"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload_part: str) -> bytes:
    return hmac.new(secret, payload_part.encode(), hashlib.sha256).digest()


def sign(
    key: str,
    content_type: str,
    filename: str,
    ttl: int,
    secret: bytes,
    now: float | None = None,
) -> str:
    if not secret:
        raise ValueError("media secret is empty")
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    content_type = content_type.split(";", 1)[0].strip().lower()
    if not _CONTENT_TYPE_RE.fullmatch(content_type):
        content_type = "application/octet-stream"  # the header we serve must be well-formed
    expires = int((time.time() if now is None else now) + ttl)
    payload = orjson.dumps(
        {"k": key, "t": content_type, "f": safe_filename(filename), "e": expires}
    )
    body = _b64(payload)
    return f"{body}.{_b64(_mac(secret, body))}"


def verify_grant(token: str, secret: bytes, now: float | None = None) -> MediaGrant:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise MediaTokenError("malformed media link")
    body, mac_part = token.split(".")
    try:
        given = _unb64(mac_part)
    except (binascii.Error, ValueError) as exc:
        raise MediaTokenError("malformed media link") from exc
    # Constant-time compare before looking at the payload: an attacker learns nothing from it.
    if not hmac.compare_digest(given, _mac(secret, body)):
        raise MediaTokenError("media link signature is invalid")
    try:
        data = orjson.loads(_unb64(body))
        grant = MediaGrant(str(data["k"]), str(data["t"]), str(data["f"]), int(data["e"]))
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise MediaTokenError("malformed media link") from exc
    if (time.time() if now is None else now) >= grant.expires:
        raise MediaTokenError("media link has expired")
    return grant


def verify(token: str, secret: bytes, now: float | None = None) -> tuple[str, str, str]:
    """(key, content_type, filename) of a valid, unexpired token; MediaTokenError otherwise."""
    grant = verify_grant(token, secret, now)
    return grant.key, grant.content_type, grant.filename
