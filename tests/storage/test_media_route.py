"""GET/HEAD /media/{token} over real HTTP (uvicorn on loopback): ranges, errors, curl."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from llmage.dialects.media.routes import Unsatisfiable, parse_range
from llmage.dialects.media.routes import router as media_router
from llmage.net.fetch import GuardedFetcher
from llmage.services.media import MediaService
from llmage.storage.local import LocalStorage
from llmage.storage.signing import sign
from support.servers import LlmageServer

SECRET = os.urandom(32)
TTL = 600


@dataclass
class Media:
    url: str
    storage: LocalStorage
    data: bytes
    key: str

    def link(
        self,
        key: str | None = None,
        *,
        ttl: int = TTL,
        secret: bytes = SECRET,
        filename: str = "clip.mp4",
        now: float | None = None,
    ) -> str:
        token = sign(key or self.key, "video/mp4", filename, ttl, secret, now=now)
        return f"{self.url}/media/{token}"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Media]:
    storage = LocalStorage(tmp_path_factory.mktemp("media"))
    data = os.urandom(700_000)
    obj = asyncio.run(storage.put(data, "video/mp4"))
    app = FastAPI()
    app.include_router(media_router)
    service = MediaService(
        storage, GuardedFetcher(max_bytes=1 << 20, timeout=5), SECRET, TTL, 1 << 20
    )
    app.state.platform = SimpleNamespace(media=service)
    server = LlmageServer(app)
    try:
        yield Media(server.url, storage, data, obj.key)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def test_full_download(media: Media, client: httpx.Client) -> None:
    resp = client.get(media.link())
    assert resp.status_code == 200
    assert resp.content == media.data
    h = resp.headers
    assert h["content-type"] == "video/mp4"
    assert h["content-length"] == str(len(media.data))
    assert h["accept-ranges"] == "bytes"
    assert h["etag"].startswith('"') and len(h["etag"]) == 34
    assert h["content-disposition"].startswith('inline; filename="clip.mp4"')
    cache = h["cache-control"]
    assert cache.startswith("private, max-age=")
    assert TTL - 5 <= int(cache.rsplit("=", 1)[1]) <= TTL
    assert "content-range" not in h


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=1000-", 1000, 699_999),
        ("bytes=-500", 699_500, 699_999),
        ("bytes=699990-99999999", 699_990, 699_999),  # end past the object: clamped
        ("bytes=-99999999", 0, 699_999),  # suffix longer than the object: all of it
    ],
)
def test_single_ranges(
    media: Media, client: httpx.Client, header: str, start: int, end: int
) -> None:
    resp = client.get(media.link(), headers={"Range": header})
    assert resp.status_code == 206
    assert resp.headers["content-range"] == f"bytes {start}-{end}/{len(media.data)}"
    assert resp.headers["content-length"] == str(end - start + 1)
    assert resp.content == media.data[start : end + 1]


@pytest.mark.parametrize("header", ["bytes=700000-", "bytes=800000-900000", "bytes=-0"])
def test_unsatisfiable(media: Media, client: httpx.Client, header: str) -> None:
    resp = client.get(media.link(), headers={"Range": header})
    assert resp.status_code == 416
    assert resp.headers["content-range"] == f"bytes */{len(media.data)}"
    assert "error" in resp.json()


@pytest.mark.parametrize("header", ["bytes=0-9,20-29", "items=0-9", "bytes=9-0", "bytes=x-y"])
def test_ranges_we_answer_with_everything(media: Media, client: httpx.Client, header: str) -> None:
    resp = client.get(media.link(), headers={"Range": header})
    assert resp.status_code == 200
    assert resp.content == media.data


def test_head(media: Media, client: httpx.Client) -> None:
    resp = client.head(media.link())
    assert resp.status_code == 200
    assert resp.headers["content-length"] == str(len(media.data))
    assert resp.headers["accept-ranges"] == "bytes"
    assert resp.headers["content-type"] == "video/mp4"
    assert resp.content == b""
    ranged = client.head(media.link(), headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206
    assert ranged.headers["content-length"] == "100"
    assert ranged.headers["content-range"] == f"bytes 0-99/{len(media.data)}"


def test_conditional_requests(media: Media, client: httpx.Client) -> None:
    etag = client.head(media.link()).headers["etag"]
    resp = client.get(media.link(), headers={"If-None-Match": etag})
    assert resp.status_code == 304 and resp.content == b""
    stale = client.get(media.link(), headers={"Range": "bytes=0-9", "If-Range": '"old"'})
    assert stale.status_code == 200 and stale.content == media.data
    fresh = client.get(media.link(), headers={"Range": "bytes=0-9", "If-Range": etag})
    assert fresh.status_code == 206 and fresh.content == media.data[:10]


def test_bad_tokens_are_403(media: Media, client: httpx.Client) -> None:
    good = media.link()
    cases = {
        "forged": media.link(secret=b"x" * 32),
        "expired": media.link(ttl=10, now=time.time() - 60),
        "garbage": f"{media.url}/media/not-a-token",
        "tampered": good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),
    }
    for name, url in cases.items():
        resp = client.get(url)
        assert resp.status_code == 403, name
        body = resp.json()
        assert set(body) == {"error"} and body["error"], name
        assert client.head(url).status_code == 403, name
    assert "expired" in client.get(cases["expired"]).json()["error"]


def test_missing_object_is_404(media: Media, client: httpx.Client) -> None:
    obj = asyncio.run(media.storage.put(b"short-lived", "video/mp4"))
    link = media.link(obj.key)
    assert client.get(link).content == b"short-lived"
    asyncio.run(media.storage.delete(obj.key))
    resp = client.get(link)
    assert resp.status_code == 404 and resp.json() == {"error": "media not found"}
    # A signed key that is not one of ours (e.g. from another deployment) is also just absent.
    assert client.get(media.link("../../etc/passwd")).status_code == 404


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_range(media: Media, tmp_path: Path) -> None:
    out = tmp_path / "part.bin"
    subprocess.run(
        ["curl", "-sSf", "-r", "100-199", "-o", str(out), media.link()], check=True, timeout=30
    )
    assert out.read_bytes() == media.data[100:200]
    whole = tmp_path / "whole.bin"
    subprocess.run(["curl", "-sSf", "-o", str(whole), media.link()], check=True, timeout=30)
    assert whole.read_bytes() == media.data


def test_parse_range_unit() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-0", 10) == (0, 0)
    assert parse_range("bytes = 2 - 4", 10) == (2, 4)
    assert parse_range("bytes=-3", 10) == (7, 9)
    assert parse_range("bytes=-", 10) is None
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=0-", 0)
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=-1", 0)


def test_empty_object(media: Media, client: httpx.Client) -> None:
    obj = asyncio.run(media.storage.put(b"", "video/mp4"))
    resp = client.get(media.link(obj.key))
    assert resp.status_code == 200
    assert resp.headers["content-length"] == "0" and resp.content == b""
    ranged = client.get(media.link(obj.key), headers={"Range": "bytes=0-"})
    assert ranged.status_code == 416 and ranged.headers["content-range"] == "bytes */0"
