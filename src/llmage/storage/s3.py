"""Media in any S3-compatible store (AWS, MinIO, Ceph, R2, OSS…), spoken directly over aiohttp.

Path-style addressing (`{endpoint}/{bucket}/{key}`) because self-hosted stores rarely have
wildcard DNS for virtual-hosted buckets. Requests carry AWS Signature Version 4 computed here
(hashlib/hmac): the SDKs would pull in a large dependency tree for four verbs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Mapping
from urllib.parse import quote

import aiohttp
from yarl import URL

from llmage.storage.contract import StoredObject
from llmage.storage.local import CHUNK, check_key, normalize_range, object_key

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_CODE_RE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")


class S3Error(RuntimeError):
    """The store refused a request. Carries the S3 error code, never credentials."""

    def __init__(self, operation: str, status: int, code: str | None) -> None:
        super().__init__(f"S3 {operation} failed: HTTP {status}" + (f" {code}" if code else ""))
        self.status = status
        self.code = code


# --- Signature Version 4 -------------------------------------------------------------------


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    k_date = _hmac(("AWS4" + secret_key).encode(), date)
    return _hmac(_hmac(_hmac(k_date, region), service), "aws4_request")


def canonical_uri(path: str) -> str:
    # S3 wants each byte outside the unreserved set percent-encoded once; `/` stays.
    return quote(path, safe="/-_.~") or "/"


def canonical_query(query: Mapping[str, str]) -> str:
    pairs = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in query.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def sign_v4(
    *,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_hash: str,
    access_key: str,
    secret_key: str,
    region: str,
    now: dt.datetime,
    service: str = "s3",
) -> dict[str, str]:
    """The headers to send: `headers` plus x-amz-date, x-amz-content-sha256, Authorization.

    Every header passed in is signed (so pass only the ones that must not be altered in transit,
    and always `host`)."""
    amz_date = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    out = dict(headers)
    out["x-amz-date"] = amz_date
    out["x-amz-content-sha256"] = payload_hash
    canon = sorted((k.lower(), " ".join(str(v).split())) for k, v in out.items())
    signed_headers = ";".join(k for k, _ in canon)
    canonical_request = "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            "".join(f"{k}:{v}\n" for k, v in canon),
            signed_headers,
            payload_hash,
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    signature = hmac.new(
        signing_key(secret_key, date, region, service), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return out


# --- The storage -----------------------------------------------------------------------------


class S3Storage:
    def __init__(
        self,
        endpoint: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
    ) -> None:
        base = URL(endpoint)
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError("s3 endpoint must be an http(s) URL")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
            raise ValueError("invalid s3 bucket name")
        self._base = base
        # An endpoint may carry a path prefix (a reverse proxy); "http://h:9000" has path "/".
        self._prefix = base.path.rstrip("/")
        # The Host header we sign must be byte-identical to the one aiohttp sends.
        self._host = base.raw_host or ""
        if base.explicit_port is not None and not base.is_default_port():
            self._host = f"{self._host}:{base.port}"
        self.bucket = bucket
        self._access_key = access_key
        self._secret_key = secret_key
        self.region = region
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # never the keys
        return f"S3Storage({str(self._base.with_user(None))!r}, bucket={self.bucket!r})"

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, auto_decompress=False)
        return self._session

    async def _send(
        self,
        method: str,
        key: str | None,
        *,
        body: bytes = b"",
        payload_hash: str = EMPTY_SHA256,
        headers: Mapping[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        """Sign and send; the caller owns (and releases, via `async with`) the response."""
        path = f"{self._prefix}/{self.bucket}" + (f"/{key}" if key else "")
        signed = sign_v4(
            method=method,
            path=path,
            query={},
            headers={"host": self._host, **(headers or {})},
            payload_hash=payload_hash,
            access_key=self._access_key,
            secret_key=self._secret_key,
            region=self.region,
            now=dt.datetime.now(dt.UTC),
        )
        # encoded=True: send exactly the path we signed, no re-quoting by yarl.
        url = self._base.with_path(canonical_uri(path), encoded=True)
        try:
            return await self.session.request(
                method, url, data=body if body else None, headers=signed, allow_redirects=False
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise S3Error(method, 0, f"unreachable ({type(exc).__name__})") from exc

    @staticmethod
    async def _fail(operation: str, resp: aiohttp.ClientResponse) -> S3Error:
        text = await resp.content.read(4096)
        match = _CODE_RE.search(text)
        return S3Error(operation, resp.status, match.group(1).decode() if match else None)

    async def put(self, data: bytes, content_type: str) -> StoredObject:
        digest = hashlib.sha256(data).hexdigest()
        key = object_key(digest, content_type)
        # The content hash doubles as the signed payload hash: S3 rejects a corrupted upload.
        async with await self._send(
            "PUT", key, body=data, payload_hash=digest, headers={"content-type": content_type}
        ) as resp:
            if resp.status != 200:
                raise await self._fail("PUT", resp)
        return StoredObject(key=key, size=len(data), sha256=digest, content_type=content_type)

    async def size(self, key: str) -> int | None:
        async with await self._send("HEAD", check_key(key)) as resp:
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise S3Error("HEAD", resp.status, None)  # HEAD answers carry no error body
            return int(resp.headers.get("Content-Length", "0"))

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        check_key(key)
        if start < 0 or (end is not None and end < start):
            raise ValueError("invalid byte range")
        headers = {}
        if start or end is not None:
            headers["range"] = f"bytes={start}-{'' if end is None else end}"
        async with await self._send("GET", key, headers=headers) as resp:
            if resp.status == 404:
                raise FileNotFoundError("no such object")
            if resp.status == 416:
                return  # start is past the end: nothing to read, as LocalStorage
            if resp.status not in (200, 206):
                raise await self._fail("GET", resp)
            skip, limit = 0, None
            if headers and resp.status == 200:
                # A store that ignored Range sent everything: cut the window out ourselves.
                span = normalize_range(int(resp.headers.get("Content-Length", "0")), start, end)
                if span is None:
                    return
                skip, limit = span[0], span[1] - span[0] + 1
            async for chunk in resp.content.iter_chunked(CHUNK):
                if skip:
                    cut = min(skip, len(chunk))
                    chunk, skip = chunk[cut:], skip - cut
                if limit is not None:
                    chunk = chunk[:limit]
                    limit -= len(chunk)
                if chunk:
                    yield chunk
                if limit == 0:
                    return

    async def read_all(self, key: str) -> bytes:
        parts = [chunk async for chunk in self.read(key)]
        return b"".join(parts)

    async def delete(self, key: str) -> None:
        async with await self._send("DELETE", check_key(key)) as resp:
            if resp.status not in (200, 204, 404):
                raise await self._fail("DELETE", resp)

    async def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (tests, first start of a fresh MinIO)."""
        async with await self._send("HEAD", None) as resp:
            if resp.status == 200:
                return
            if resp.status != 404:
                raise S3Error("HEAD bucket", resp.status, None)
        body = b""
        if self.region != "us-east-1":  # us-east-1 is the one region that rejects this element
            body = (
                '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<LocationConstraint>{self.region}</LocationConstraint>"
                "</CreateBucketConfiguration>"
            ).encode()
        async with await self._send(
            "PUT", None, body=body, payload_hash=hashlib.sha256(body).hexdigest()
        ) as resp:
            if resp.status == 200:
                return
            error = await self._fail("PUT bucket", resp)
            if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise error

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
