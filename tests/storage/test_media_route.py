"""GET/HEAD /media/{token} over real HTTP (uvicorn on loopback), from local and from S3 storage
(moto, SigV4 checked): ranges, conditional requests, sniffed types, nosniff, errors, curl."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import orjson
import pytest
from fastapi import FastAPI
from s3help import moto_s3

from llmage.dialects.media.routes import Unsatisfiable, parse_range
from llmage.dialects.media.routes import router as media_router
from llmage.services.media_links import MediaLinks
from llmage.storage.contract import Storage
from llmage.storage.local import LocalStorage
from llmage.storage.signing import seal
from support.servers import LlmageServer

SECRET = os.urandom(32)
TTL = 600
VIDEO = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00" + os.urandom(700_000)
# A real PNG signature with an HTML page after it: what a browser would sniff as HTML.
POLYGLOT = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    + b"\x00" * 17
    + b"<html><body><script>alert(document.domain)</script></body></html>"
)
HTML = b"<!DOCTYPE html><html><script>alert(1)</script></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


@dataclass
class Media:
    url: str
    keys: dict[str, str]  # name -> storage key
    storage: Storage  # used from the test thread's own loop, not the server's

    def link(
        self,
        name: str = "video",
        *,
        key: str | None = None,
        ttl: int = TTL,
        secret: bytes = SECRET,
        now: float | None = None,
    ) -> str:
        return f"{self.url}/media/{seal(key or self.keys[name], 'clip', ttl, secret, now=now)}"


async def _fill(storage: Storage) -> dict[str, str]:
    keys = {}
    # The declared type is deliberately wrong for the last three: it must not matter.
    for name, data, declared in (
        ("video", VIDEO, "video/mp4"),
        ("empty", b"", "video/mp4"),
        ("polyglot", POLYGLOT, "text/html"),
        ("html", HTML, "image/png"),
        ("svg", SVG, "image/svg+xml"),
    ):
        keys[name] = (await storage.put(data, declared)).key
    await storage.close()
    return keys


@pytest.fixture(scope="module", params=["local", "s3"])
def media(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Media]:
    with moto_s3() if request.param == "s3" else contextlib.nullcontext() as s3:

        def make() -> Storage:
            if s3 is None:
                return LocalStorage(root)
            return s3.storage(bucket)

        root = tmp_path_factory.mktemp("media")
        bucket = "media-" + os.urandom(4).hex()
        if s3 is not None:
            asyncio.run(s3.storage(bucket).ensure_bucket())
        keys = asyncio.run(_fill(make()))
        # The server's own storage: an S3 client belongs to the loop that first uses it.
        served = make()

        @contextlib.asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            yield
            await served.close()

        app = FastAPI(lifespan=lifespan)
        app.include_router(media_router)
        app.state.platform = SimpleNamespace(
            media=SimpleNamespace(links=MediaLinks(served, SECRET, TTL))
        )
        server = LlmageServer(app)
        try:
            yield Media(server.url, keys, make())
        finally:
            server.stop()


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def assert_safe(resp: httpx.Response) -> None:
    assert resp.headers["x-content-type-options"] == "nosniff", resp.status_code
    assert resp.headers["content-security-policy"] == "sandbox", resp.status_code
    assert "html" not in resp.headers.get("content-type", ""), resp.status_code


def test_full_download(media: Media, client: httpx.Client) -> None:
    resp = client.get(media.link())
    assert resp.status_code == 200
    assert resp.content == VIDEO
    h = resp.headers
    assert h["content-type"] == "video/mp4"
    assert h["content-length"] == str(len(VIDEO))
    assert h["accept-ranges"] == "bytes"
    assert h["etag"].startswith('"') and len(h["etag"]) == 34
    assert h["content-disposition"].startswith('inline; filename="clip.mp4"')
    cache = h["cache-control"]
    assert cache.startswith("private, max-age=")
    assert TTL - 5 <= int(cache.rsplit("=", 1)[1]) <= TTL
    assert "content-range" not in h
    assert_safe(resp)


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=1000-", 1000, len(VIDEO) - 1),
        ("bytes=-500", len(VIDEO) - 500, len(VIDEO) - 1),
        ("bytes=700000-99999999", 700_000, len(VIDEO) - 1),  # end past the object: clamped
        ("bytes=-99999999", 0, len(VIDEO) - 1),  # suffix longer than the object: all of it
    ],
)
def test_single_ranges(
    media: Media, client: httpx.Client, header: str, start: int, end: int
) -> None:
    resp = client.get(media.link(), headers={"Range": header})
    assert resp.status_code == 206
    assert resp.headers["content-range"] == f"bytes {start}-{end}/{len(VIDEO)}"
    assert resp.headers["content-length"] == str(end - start + 1)
    assert resp.headers["content-type"] == "video/mp4"  # sniffed from the head, not the range
    assert resp.content == VIDEO[start : end + 1]
    assert_safe(resp)


@pytest.mark.parametrize("header", ["bytes=800000-", "bytes=800000-900000", "bytes=-0"])
def test_unsatisfiable(media: Media, client: httpx.Client, header: str) -> None:
    resp = client.get(media.link(), headers={"Range": header})
    assert resp.status_code == 416
    assert resp.headers["content-range"] == f"bytes */{len(VIDEO)}"
    assert "error" in resp.json()
    assert_safe(resp)


@pytest.mark.parametrize("header", ["bytes=0-9,20-29", "items=0-9", "bytes=9-0", "bytes=x-y"])
def test_ranges_we_answer_with_everything(media: Media, client: httpx.Client, header: str) -> None:
    resp = client.get(media.link(), headers={"Range": header})
    assert resp.status_code == 200
    assert resp.content == VIDEO


def test_head(media: Media, client: httpx.Client) -> None:
    resp = client.head(media.link())
    assert resp.status_code == 200
    assert resp.headers["content-length"] == str(len(VIDEO))
    assert resp.headers["accept-ranges"] == "bytes"
    assert resp.headers["content-type"] == "video/mp4"
    assert resp.content == b""
    assert_safe(resp)
    ranged = client.head(media.link(), headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206
    assert ranged.headers["content-length"] == "100"
    assert ranged.headers["content-range"] == f"bytes 0-99/{len(VIDEO)}"
    assert_safe(ranged)


def test_conditional_requests(media: Media, client: httpx.Client) -> None:
    etag = client.head(media.link()).headers["etag"]
    resp = client.get(media.link(), headers={"If-None-Match": etag})
    assert resp.status_code == 304 and resp.content == b""
    assert resp.headers["x-content-type-options"] == "nosniff"
    stale = client.get(media.link(), headers={"Range": "bytes=0-9", "If-Range": '"old"'})
    assert stale.status_code == 200 and stale.content == VIDEO
    fresh = client.get(media.link(), headers={"Range": "bytes=0-9", "If-Range": etag})
    assert fresh.status_code == 206 and fresh.content == VIDEO[:10]


def test_polyglot_is_served_as_the_image_it_starts_with(media: Media, client: httpx.Client) -> None:
    for method in ("GET", "HEAD"):
        resp = client.request(method, media.link("polyglot"))
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "image/png"  # stored as "text/html": ignored
        assert resp.headers["content-disposition"].startswith('inline; filename="clip.png"')
        assert_safe(resp)


@pytest.mark.parametrize("name", ["html", "svg"])
def test_anything_off_the_allow_list_is_an_attachment(
    media: Media, client: httpx.Client, name: str
) -> None:
    for method in ("GET", "HEAD"):
        resp = client.request(method, media.link(name))
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/octet-stream"
        assert resp.headers["content-disposition"].startswith('attachment; filename="clip.bin"')
        assert_safe(resp)
    assert client.get(media.link(name)).content == {"html": HTML, "svg": SVG}[name]


def test_bad_tokens_are_one_plain_404(media: Media, client: httpx.Client) -> None:
    good = media.link()
    token = good.rsplit("/", 1)[1]
    old_style = base64.urlsafe_b64encode(
        orjson.dumps({"k": media.keys["html"], "t": "text/html", "f": "x.html", "e": 10**12})
    ).decode()
    cases = {
        "forged": media.link(secret=b"x" * 32),
        "expired": media.link(ttl=10, now=time.time() - 60),
        "garbage": f"{media.url}/media/not-a-token",
        "tampered": good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),
        "truncated": f"{media.url}/media/{token[:40]}",
        "old format": f"{media.url}/media/{old_style.rstrip('=')}.AAAA",
    }
    for name, url in cases.items():
        resp = client.get(url)
        assert resp.status_code == 404, name
        assert resp.json() == {"error": "media not found"}, name
        assert_safe(resp)
        assert client.head(url).status_code == 404, name


def test_missing_object_is_the_same_404(media: Media, client: httpx.Client) -> None:
    async def put_then(action: str, key: str | None = None) -> str:
        if action == "put":
            key = (await media.storage.put(b"short-lived", "video/mp4")).key
        else:
            assert key is not None
            await media.storage.delete(key)
        await media.storage.close()
        return key

    key = asyncio.run(put_then("put"))
    link = media.link(key=key)
    assert client.get(link).content == b"short-lived"
    asyncio.run(put_then("delete", key))
    resp = client.get(link)
    assert resp.status_code == 404 and resp.json() == {"error": "media not found"}
    # A sealed key that is not one of ours (e.g. from another deployment) is also just absent.
    assert client.get(media.link(key="../../etc/passwd")).status_code == 404


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_range(media: Media, tmp_path: Path) -> None:
    out = tmp_path / "part.bin"
    subprocess.run(
        ["curl", "-sSf", "-r", "100-199", "-o", str(out), media.link()], check=True, timeout=30
    )
    assert out.read_bytes() == VIDEO[100:200]
    whole = tmp_path / "whole.bin"
    subprocess.run(["curl", "-sSf", "-o", str(whole), media.link()], check=True, timeout=30)
    assert whole.read_bytes() == VIDEO


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
    resp = client.get(media.link("empty"))
    assert resp.status_code == 200
    assert resp.headers["content-length"] == "0" and resp.content == b""
    assert resp.headers["content-type"] == "application/octet-stream"
    ranged = client.get(media.link("empty"), headers={"Range": "bytes=0-"})
    assert ranged.status_code == 416 and ranged.headers["content-range"] == "bytes */0"
