"""Upstream credentials as typed values: one API key, an access/secret key pair, or a pool of keys.

At rest a channel stores its credential's type in plain text (`channels.credential_type`) and its
secret part encrypted (`channels.credential_enc`, a Fernet token made by auth/crypto.py). The
plaintext under the encryption is `dump_secret()`'s: the bare key for `key` (so rows written
before credentials were typed are already valid `key` rows), JSON for `pair` and `pool`.

Never logged: every type hides its secrets from `repr`, and `secret_values()` lists what the
shared redaction must scrub from upstream text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

CredentialType = Literal["key", "pair", "pool"]
CREDENTIAL_TYPES: tuple[CredentialType, ...] = ("key", "pair", "pool")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key, sent as `Bearer <key>`, `Token <key>` or however the provider wants it."""

    key: str = field(repr=False)
    type: CredentialType = field(default="key", init=False)


@dataclass(frozen=True, slots=True)
class KeyPair:
    """Access key + secret key: Kling (JWT HS256), Jimeng (Volcengine V4 HMAC)."""

    access_key: str
    secret_key: str = field(repr=False)
    type: CredentialType = field(default="pair", init=False)


@dataclass(frozen=True, slots=True)
class KeyPool:
    """Several keys of one upstream account. A task is submitted and polled with one of them
    (its index is stored with the task); routing may set a failing key aside."""

    keys: tuple[str, ...] = field(repr=False)
    type: CredentialType = field(default="pool", init=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a key pool needs at least one key")


Credentials = ApiKey | KeyPair | KeyPool
# What one upstream request is signed with: a pool resolves to one of its keys first.
Credential = ApiKey | KeyPair


def pick(creds: Credentials | None, index: int) -> Credential | None:
    """The single credential a request is signed with; `index` chooses inside a pool (wraps)."""
    if isinstance(creds, KeyPool):
        return ApiKey(creds.keys[index % len(creds.keys)])
    return creds


def pool_size(creds: Credentials | None) -> int:
    return len(creds.keys) if isinstance(creds, KeyPool) else 1


def dump_secret(creds: Credentials) -> str:
    """The plaintext that gets encrypted at rest (see the module docstring)."""
    if isinstance(creds, ApiKey):
        return creds.key
    if isinstance(creds, KeyPair):
        return json.dumps({"access_key": creds.access_key, "secret_key": creds.secret_key})
    return json.dumps({"keys": list(creds.keys)})


def load_secret(kind: str | None, plaintext: str) -> Credentials:
    """Inverse of dump_secret. `kind` None is a row from before typed credentials: a key."""
    if kind in (None, "", "key"):
        return ApiKey(plaintext)
    try:
        data = json.loads(plaintext)
    except json.JSONDecodeError as exc:
        raise ValueError(f"a {kind!r} credential is not valid JSON") from exc
    if kind == "pair" and isinstance(data, dict):
        ak, sk = data.get("access_key"), data.get("secret_key")
        if isinstance(ak, str) and isinstance(sk, str) and ak and sk:
            return KeyPair(ak, sk)
    if kind == "pool" and isinstance(data, dict) and isinstance(data.get("keys"), list):
        keys = tuple(k for k in data["keys"] if isinstance(k, str) and k)
        if keys:
            return KeyPool(keys)
    raise ValueError(f"malformed {kind!r} credential")


def secret_values(creds: Credentials | None) -> tuple[str, ...]:
    """Every secret string the credential holds (for redaction). An access key is an
    identifier, but it is scrubbed too: it names our account."""
    if creds is None:
        return ()
    if isinstance(creds, ApiKey):
        return (creds.key,)
    if isinstance(creds, KeyPair):
        return (creds.access_key, creds.secret_key)
    return creds.keys


def describe(creds: Credentials | None) -> str:
    """A safe one-line description for listings: the type only, no part of any secret."""
    if creds is None:
        return "-"
    if isinstance(creds, ApiKey):
        return "key"
    if isinstance(creds, KeyPair):
        return "pair"
    return f"pool of {len(creds.keys)}"


def from_fields(
    *,
    api_key: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    api_keys: str | list[str] | None = None,
) -> Credentials | None:
    """The credential an operator typed (CLI flags, admin API fields): exactly one of a key,
    an access/secret pair, or a pool (a list, or comma-separated). ValueError names the field."""
    pool = [k.strip() for k in api_keys.split(",")] if isinstance(api_keys, str) else api_keys or []
    pool = [k for k in pool if k]
    given = [n for n, v in (("api_key", api_key), ("access_key", access_key),
                            ("api_keys", pool)) if v]  # fmt: skip
    if len(given) > 1:
        raise ValueError(f"give one credential, not {' and '.join(given)}")
    if secret_key and not access_key:
        raise ValueError("secret_key needs access_key")
    if access_key:
        if not secret_key:
            raise ValueError("access_key needs secret_key")
        return KeyPair(access_key, secret_key)
    if api_key:
        return ApiKey(api_key)
    if pool:
        return KeyPool(tuple(pool))
    return None
