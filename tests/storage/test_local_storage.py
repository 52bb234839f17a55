"""LocalStorage on a real temporary directory: content addressing, atomic writes, ranges."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from llmage.settings import Settings
from llmage.storage.factory import make_storage
from llmage.storage.local import CHUNK, KEY_RE, LocalStorage, check_key, extension_for
from llmage.storage.s3 import S3Storage

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


async def collect(storage: LocalStorage, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([c async for c in storage.read(key, start, end)])


async def test_put_is_content_addressed_and_round_trips(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    obj = await storage.put(PNG, "image/png")
    digest = hashlib.sha256(PNG).hexdigest()
    assert obj.key == f"sha256/{digest[:2]}/{digest[2:]}.png"
    assert KEY_RE.fullmatch(obj.key)
    assert (obj.size, obj.sha256, obj.content_type) == (len(PNG), digest, "image/png")
    assert (tmp_path / obj.key).read_bytes() == PNG
    assert await storage.read_all(obj.key) == PNG
    assert await storage.size(obj.key) == len(PNG)
    # Same bytes again: same key, nothing rewritten.
    mtime = (tmp_path / obj.key).stat().st_mtime_ns
    again = await storage.put(PNG, "image/png")
    assert again == obj
    assert (tmp_path / obj.key).stat().st_mtime_ns == mtime
    # No temp files are left behind.
    leftovers = [p for p in tmp_path.rglob(".tmp-*")]
    assert leftovers == []


async def test_ranges(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    obj = await storage.put(PNG, "image/png")
    assert await collect(storage, obj.key, 0, 9) == PNG[:10]
    assert await collect(storage, obj.key, 10) == PNG[10:]
    assert await collect(storage, obj.key, 100, 199) == PNG[100:200]
    assert await collect(storage, obj.key, len(PNG) - 1) == PNG[-1:]
    assert await collect(storage, obj.key, 5, 10**9) == PNG[5:]  # end clamps to the object
    assert await collect(storage, obj.key, len(PNG)) == b""  # start past the end: nothing
    with pytest.raises(ValueError):
        await collect(storage, obj.key, 10, 5)
    with pytest.raises(ValueError):
        await collect(storage, obj.key, -1)


async def test_large_object_is_read_in_chunks(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    data = os.urandom(CHUNK * 3 + 17)
    obj = await storage.put(data, "video/mp4")
    assert obj.key.endswith(".mp4")
    chunks = [c async for c in storage.read(obj.key)]
    assert len(chunks) == 4 and max(len(c) for c in chunks) == CHUNK
    assert b"".join(chunks) == data
    middle = [c async for c in storage.read(obj.key, CHUNK - 5, 2 * CHUNK + 4)]
    assert b"".join(middle) == data[CHUNK - 5 : 2 * CHUNK + 5]


async def test_missing_and_delete(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    obj = await storage.put(b"hello", "text/plain")
    empty = await storage.put(b"", "text/plain")
    assert await storage.size(empty.key) == 0
    assert await storage.read_all(empty.key) == b""
    assert await collect(storage, empty.key) == b""
    await storage.delete(obj.key)
    assert await storage.size(obj.key) is None
    await storage.delete(obj.key)  # deleting twice is fine
    with pytest.raises(FileNotFoundError):
        await storage.read_all(obj.key)
    with pytest.raises(FileNotFoundError):
        await collect(storage, obj.key)
    await storage.close()


@pytest.mark.parametrize(
    "key",
    [
        "../etc/passwd",
        "/etc/passwd",
        "sha256/ab/../../../../etc/passwd",
        "sha256/ab/" + "0" * 62,  # no extension
        "sha256/AB/" + "0" * 62 + ".png",  # upper case
        "sha256/ab/" + "0" * 61 + ".png",  # short digest
        "sha256/ab/" + "0" * 62 + ".png/..",
        "sha256/ab/" + "0" * 62 + ".png\x00",
        "sha256\\ab\\" + "0" * 62 + ".png",
        "",
    ],
)
async def test_keys_are_validated_before_the_filesystem(tmp_path: Path, key: str) -> None:
    storage = LocalStorage(tmp_path / "media")
    with pytest.raises(ValueError):
        check_key(key)
    with pytest.raises(ValueError):
        await storage.size(key)
    with pytest.raises(ValueError):
        await storage.read_all(key)
    with pytest.raises(ValueError):
        await collect(storage, key)
    with pytest.raises(ValueError):
        await storage.delete(key)
    assert not (tmp_path / "media").exists()


def test_extensions() -> None:
    assert extension_for("image/jpeg") == "jpg"
    assert extension_for("Video/MP4; codecs=avc1") == "mp4"
    assert extension_for("application/x-unknown") == "bin"


def test_factory(tmp_path: Path) -> None:
    local = make_storage(Settings(data_dir=tmp_path))
    assert isinstance(local, LocalStorage) and local.root == tmp_path / "media"
    with pytest.raises(ValueError, match="s3_bucket"):
        make_storage(Settings(data_dir=tmp_path, storage_backend="s3", s3_endpoint="http://x"))
    s3 = make_storage(
        Settings(
            data_dir=tmp_path,
            storage_backend="s3",
            s3_endpoint="http://127.0.0.1:9000",
            s3_bucket="media",
            s3_access_key="AKIAEXAMPLE",
            s3_secret_key="very-secret-value",
        )
    )
    assert isinstance(s3, S3Storage)
    assert "very-secret-value" not in repr(s3)
    with pytest.raises(ValueError, match="unknown storage_backend"):
        make_storage(Settings(data_dir=tmp_path, storage_backend="ftp"))
