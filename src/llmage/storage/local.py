"""Media on the local filesystem, content-addressed under one root directory.

Keys look like `sha256/ab/cdef….png`: the digest names the bytes, so a second copy of the same
file costs nothing and a key can never be steered to another path. Every key is checked against
`KEY_RE` before the filesystem is touched; a key that does not match is a ValueError, a key that
matches but has no file is FileNotFoundError (the same convention S3Storage follows).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from llmage.storage.contract import StoredObject

CHUNK = 256 * 1024

KEY_RE = re.compile(r"sha256/[0-9a-f]{2}/[0-9a-f]{62}\.[a-z0-9]{1,5}")

_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "video/mp4": "mp4",
    "video/webm": "webm",
    "video/quicktime": "mov",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/mp4": "m4a",
    "application/json": "json",
    "text/plain": "txt",
}


def extension_for(content_type: str) -> str:
    """File extension for a content type; `bin` for anything we do not name."""
    base = content_type.split(";", 1)[0].strip().lower()
    return _EXTENSIONS.get(base, "bin")


def object_key(digest: str, content_type: str) -> str:
    """The storage key for bytes with this sha256 hex digest (shared by every backend)."""
    return f"sha256/{digest[:2]}/{digest[2:]}.{extension_for(content_type)}"


def check_key(key: str) -> str:
    """Return the key if it has exactly the shape we generate; otherwise ValueError."""
    if not isinstance(key, str) or KEY_RE.fullmatch(key) is None:
        raise ValueError("invalid storage key")
    return key


def normalize_range(size: int, start: int, end: int | None) -> tuple[int, int] | None:
    """Clamp an inclusive [start, end] to the object; None when nothing is left to read."""
    if start < 0 or (end is not None and end < start):
        raise ValueError("invalid byte range")
    last = size - 1 if end is None else min(end, size - 1)
    if start > last:
        return None
    return start, last


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, data: bytes, content_type: str) -> StoredObject:
        # Hashing and writing a video is tens of milliseconds of blocking work: off the loop.
        return await asyncio.to_thread(self._put_sync, bytes(data), content_type)

    def _put_sync(self, data: bytes, content_type: str) -> StoredObject:
        digest = hashlib.sha256(data).hexdigest()
        key = object_key(digest, content_type)
        path = self._path(key)
        stored = StoredObject(key=key, size=len(data), sha256=digest, content_type=content_type)
        try:
            if path.stat().st_size == len(data):
                return stored  # same digest, same length: these bytes are already here
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        # Temp file in the same directory + rename: a reader sees the whole file or none of it,
        # even if we crash half-way (rename within one filesystem is atomic).
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o640)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._fsync_dir(path.parent)
        return stored

    @staticmethod
    def _fsync_dir(directory: Path) -> None:
        # Makes the rename itself durable; not every platform lets us open a directory.
        try:
            dfd = os.open(directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)

    async def size(self, key: str) -> int | None:
        path = self._path(key)
        try:
            st = await asyncio.to_thread(path.stat)
        except FileNotFoundError:
            return None
        return st.st_size

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        path = self._path(key)
        fh: BinaryIO = await asyncio.to_thread(path.open, "rb")
        try:
            size = os.fstat(fh.fileno()).st_size
            span = normalize_range(size, start, end)
            if span is None:
                return
            first, last = span
            await asyncio.to_thread(fh.seek, first)
            remaining = last - first + 1
            while remaining > 0:
                chunk = await asyncio.to_thread(fh.read, min(CHUNK, remaining))
                if not chunk:  # file shrank under us (cannot happen for our immutable files)
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            fh.close()

    async def read_all(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def delete(self, key: str) -> None:
        path = self._path(key)
        await asyncio.to_thread(path.unlink, True)

    async def close(self) -> None:
        return None
