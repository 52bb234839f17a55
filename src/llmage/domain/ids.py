"""Public identifiers: 21 url-safe characters, like the seed's `llmusageid` and `llmid`."""

from __future__ import annotations

import os

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_TABLE = bytes(_ALPHABET, "ascii") * 4  # 256 entries: byte value -> symbol, uniform over 64


class _Entropy:
    """os.urandom in 4 KiB gulps: ids are minted on every request, a syscall each is waste."""

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0

    def take(self, n: int) -> bytes:
        if self._pos + n > len(self._buf):
            self._buf, self._pos = os.urandom(4096), 0
        out = self._buf[self._pos : self._pos + n]
        self._pos += n
        return out


_entropy = _Entropy()


def public_id(size: int = 21) -> str:
    return _entropy.take(size).translate(_TABLE).decode("ascii")


def chat_completion_id() -> str:
    return "chatcmpl-" + _entropy.take(12).hex()
