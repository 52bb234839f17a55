"""Opaque, unforgeable, expiring media links: `/media/<token>`.

token = base64url(version ‖ nonce ‖ AES-256-GCM(storage key, download name, expiry)). The key
is derived from the media secret (the platform derives that from the deployment key with
CredentialBox.derive("media"), or takes the `media_secret` setting). Encryption hides the
storage key (a content hash: it would say which bytes a link serves); the GCM tag makes any
change, truncation or forgery fail as a whole. The expiry is inside the sealed payload, so a
link cannot be extended. The token names no content type: the media route sniffs the bytes.

Every failure is the same MediaTokenError with the same message: a client learns nothing from
it about why a link is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import time
from dataclasses import dataclass

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAX_TOKEN_LENGTH = 1024
_VERSION = b"\x02"
_NONCE = 12
_TAG = 16
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._\-]+")


class MediaTokenError(ValueError):
    """The link is malformed, forged, tampered with or expired (deliberately not saying which)."""

    def __init__(self) -> None:
        super().__init__("invalid media link")


@dataclass(frozen=True, slots=True)
class MediaGrant:
    key: str  # storage key, as our own records name it
    name: str  # download name without extension (the extension follows the sniffed type)
    expires: int  # unix seconds


def safe_filename(name: str) -> str:
    """A filename that is safe in a Content-Disposition header on every browser."""
    cleaned = _UNSAFE_FILENAME.sub("_", name).strip("._")[:120]
    return cleaned or "media"


def _cipher(secret: bytes) -> AESGCM:
    if not secret:
        raise ValueError("media secret is empty")
    # A key of its own for this one use, whatever the length and origin of the media secret.
    return AESGCM(hmac.new(secret, b"llmage:media-link:aes-256-gcm", hashlib.sha256).digest())


def seal(key: str, name: str, ttl: int, secret: bytes, now: float | None = None) -> str:
    """A link token granting `key` (served as `name`.<ext>) for `ttl` seconds."""
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    expires = int((time.time() if now is None else now) + ttl)
    payload = orjson.dumps([key, safe_filename(name), expires])
    nonce = os.urandom(_NONCE)
    sealed = _cipher(secret).encrypt(nonce, payload, _VERSION)
    return base64.urlsafe_b64encode(_VERSION + nonce + sealed).rstrip(b"=").decode()


def open_grant(token: str, secret: bytes, now: float | None = None) -> MediaGrant:
    """The grant a token carries; MediaTokenError if it is not one we sealed or has expired."""
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
        raise MediaTokenError
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise MediaTokenError from None
    if len(raw) < 1 + _NONCE + _TAG or raw[:1] != _VERSION:
        raise MediaTokenError
    try:
        payload = _cipher(secret).decrypt(raw[1 : 1 + _NONCE], raw[1 + _NONCE :], _VERSION)
        key, name, expires = orjson.loads(payload)
    except (InvalidTag, ValueError, TypeError):
        raise MediaTokenError from None
    if not (isinstance(key, str) and isinstance(name, str) and type(expires) is int):
        raise MediaTokenError
    if (time.time() if now is None else now) >= expires:
        raise MediaTokenError
    return MediaGrant(key, name, expires)
