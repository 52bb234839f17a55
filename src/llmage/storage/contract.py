"""Where media lives. Keys are opaque strings chosen by the storage (content-addressed), never
paths taken from a request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from llmage.domain.stored_files import StoredFile

# What a put returns is exactly the record the platform keeps of the file.
StoredObject = StoredFile


class Storage(Protocol):
    async def put(self, data: bytes, content_type: str) -> StoredObject: ...

    async def size(self, key: str) -> int | None:
        """Byte size, or None if there is no such object."""

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes [start, end] inclusive (end None = to the last byte), in chunks."""

    async def read_all(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...

    async def close(self) -> None: ...
