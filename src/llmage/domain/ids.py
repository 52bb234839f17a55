"""Public identifiers: 21 url-safe characters, like the seed's `llmusageid` and `llmid`."""

from __future__ import annotations

import secrets

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


def public_id(size: int = 21) -> str:
    # 64 symbols: each byte's low 6 bits pick one uniformly.
    return "".join(_ALPHABET[b & 63] for b in secrets.token_bytes(size))


def chat_completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)
