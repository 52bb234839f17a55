"""Console secrets that are not passwords: session tokens, CSRF tokens, SMS codes.

Pure functions. A session token is 256 random bits handed to the browser once; the database keeps
only its SHA-256 (a fast hash is right for high-entropy tokens). The CSRF token is an HMAC of the
session id under a deployment secret, so it is bound to one session and needs no storage. SMS
codes have six digits, far too little entropy for a plain hash: they are stored as an HMAC under
a deployment secret, which a stolen table alone cannot brute-force.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def session_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(secret: bytes, sid: str) -> str:
    return hmac.new(secret, f"csrf:{sid}".encode(), hashlib.sha256).hexdigest()


def csrf_matches(secret: bytes, sid: str, presented: str | None) -> bool:
    if not presented:
        return False
    return hmac.compare_digest(csrf_token(secret, sid), presented)


def new_sms_code(digits: int = 6) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(digits))


def sms_code_hash(secret: bytes, phone: str, purpose: str, code: str) -> str:
    return hmac.new(secret, f"sms:{phone}:{purpose}:{code}".encode(), hashlib.sha256).hexdigest()


WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 (a label, not a secret)


def user_webhook_secret(base: bytes, user_id: int, salt: str | None) -> str:
    """A tenant's webhook signing secret: derived from the deployment's webhook secret, the
    user id and a per-user salt, so no tenant can compute another's, and a new salt (rotation)
    gives a new secret. Receivers use the whole string, prefix included, as the HMAC key."""
    mac = hmac.new(base, f"webhook:user:{user_id}:{salt or ''}".encode(), hashlib.sha256)
    return WEBHOOK_SECRET_PREFIX + mac.hexdigest()
