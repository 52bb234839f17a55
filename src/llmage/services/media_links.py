"""Media links: minted only from our own file records, resolved only from tokens we sealed.

`url()` takes a `StoredFile`, the type our task records are read back as; request parameters
are plain JSON and can never be one, so no request field can make a link. `open()` turns a token
back into what the media route serves; the type it serves is sniffed from the stored bytes
against the allow-list (domain.media_types), never taken from a record, a token or a client.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass

from llmage.domain.media_types import SNIFF_BYTES, extension, is_inline, sniff
from llmage.domain.stored_files import StoredFile
from llmage.storage.contract import Storage
from llmage.storage.signing import MediaGrant, MediaTokenError, open_grant, seal

SNIFF_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class ServedMedia:
    """What one media response serves: the bytes of `key`, typed by sniffing them."""

    key: str
    size: int
    content_type: str  # allow-listed, or application/octet-stream
    inline: bool  # False: served as an attachment, never rendered
    filename: str
    etag: str
    expires: int  # unix seconds: how long a cache may keep it


def _ours(file: StoredFile) -> StoredFile:
    # The type says it already; this also stops callers the type checker cannot see (Any, JSON).
    if not isinstance(file, StoredFile):
        raise TypeError("media links are minted only from stored file records")
    return file


class MediaLinks:
    def __init__(self, storage: Storage, secret: bytes, ttl: int) -> None:
        if not secret:
            raise ValueError("media secret is empty")
        self._storage = storage
        self._secret = secret
        self.ttl = ttl
        # Keys are content hashes: a key's bytes, hence its sniffed type, never change.
        self._types: OrderedDict[str, str] = OrderedDict()

    # -- minting --------------------------------------------------------------------------------

    def grant(self, file: StoredFile, name: str, now: float | None = None) -> MediaGrant:
        now = time.time() if now is None else now
        return MediaGrant(_ours(file).key, name, int(now + self.ttl))

    def token(self, file: StoredFile, name: str) -> str:
        return seal(_ours(file).key, name, self.ttl, self._secret)

    def url(self, file: StoredFile, base_url: str, name: str) -> str:
        return f"{base_url.rstrip('/')}/media/{self.token(file, name)}"

    # -- serving --------------------------------------------------------------------------------

    async def open(self, token: str, now: float | None = None) -> ServedMedia | None:
        """What a token grants, or None for a bad, expired or dangling link (one answer for all:
        the client is not told which)."""
        try:
            grant = open_grant(token, self._secret, now)
        except MediaTokenError:
            return None
        return await self.describe(grant)

    async def describe(self, grant: MediaGrant) -> ServedMedia | None:
        try:
            size = await self._storage.size(grant.key)
        except ValueError:  # a key our storage cannot hold (a link from another setup)
            return None
        if size is None:
            return None
        ctype = await self._sniffed(grant.key, size)
        return ServedMedia(
            key=grant.key,
            size=size,
            content_type=ctype,
            inline=is_inline(ctype),
            filename=f"{grant.name}.{extension(ctype)}",
            # The key names the bytes, so it is a strong validator.
            etag='"' + hashlib.sha256(grant.key.encode()).hexdigest()[:32] + '"',
            expires=grant.expires,
        )

    def read(self, media: ServedMedia, start: int, end: int) -> AsyncIterator[bytes]:
        return self._storage.read(media.key, start, end)

    async def _sniffed(self, key: str, size: int) -> str:
        found = self._types.get(key)
        if found is not None:
            self._types.move_to_end(key)
            return found
        head = b""
        if size:
            head = b"".join([c async for c in self._storage.read(key, 0, SNIFF_BYTES - 1)])
        ctype = sniff(head)
        self._types[key] = ctype
        if len(self._types) > SNIFF_CACHE_SIZE:
            self._types.popitem(last=False)
        return ctype
