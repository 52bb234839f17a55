"""Kling JWT (PROVIDERS §6): header `{"alg":"HS256","typ":"JWT"}`, payload `{"iss": AK,
"exp": now+1800, "nbf": now-5}`, HMAC-SHA256 with the secret key, sent as `Bearer <token>`.

Pure functions on hmac/hashlib, plus a small cache that reuses a token per key pair until it is
close to expiry (a fresh token per request would work, but costs a signature per poll).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections import OrderedDict

import orjson

LIFETIME = 1800  # seconds a token is valid (Kling's documented exp)
NOT_BEFORE_SKEW = 5  # nbf = now - 5: tolerates a slightly slow upstream clock
RENEW_BEFORE = 300  # renew this long before exp, so no request ever carries an expiring token
_HEADER = orjson.dumps({"alg": "HS256", "typ": "JWT"})


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def make_token(access_key: str, secret_key: str, now: int) -> str:
    """The JWT Kling expects, issued at `now` (unix seconds)."""
    payload = orjson.dumps({"iss": access_key, "exp": now + LIFETIME, "nbf": now - NOT_BEFORE_SKEW})
    signing_input = f"{b64url(_HEADER)}.{b64url(payload)}"
    mac = hmac.new(secret_key.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


class TokenCache:
    """Tokens per key pair, renewed `RENEW_BEFORE` seconds before they expire. Keyed on a hash
    of the secret so a rotated secret gets a new token and no secret is kept as a dict key."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._tokens: OrderedDict[tuple[str, str], tuple[str, int]] = OrderedDict()

    def token(self, access_key: str, secret_key: str, now: float) -> str:
        key = (access_key, hashlib.sha256(secret_key.encode()).hexdigest())
        found = self._tokens.get(key)
        issued_at = int(now)
        if found is not None:
            token, expires = found
            # reuse only while valid for a while yet, and never before its own nbf (a clock
            # that went back would otherwise send a token the upstream calls not yet valid)
            if expires - RENEW_BEFORE > now >= expires - LIFETIME - NOT_BEFORE_SKEW:
                self._tokens.move_to_end(key)
                return token
        token = make_token(access_key, secret_key, issued_at)
        self._tokens[key] = (token, issued_at + LIFETIME)
        self._tokens.move_to_end(key)
        while len(self._tokens) > self._size:
            self._tokens.popitem(last=False)
        return token
