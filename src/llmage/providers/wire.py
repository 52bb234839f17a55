"""Upstream requests and replies as plain values: what an adapter builds and parses.

An adapter never performs IO: it returns an `UpstreamRequest` (method, URL, headers, body bytes)
and reads an `UpstreamReply` (status, lower-cased headers, body bytes). The shared executor sends
requests through one transport, which is what makes every adapter testable on recorded replies.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import orjson

from llmage.domain.errors import UpstreamError, UpstreamKind

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def idempotent(self) -> bool:
        """A non-idempotent request (a create) is never resent automatically."""
        return self.method.upper() in IDEMPOTENT_METHODS

    def with_headers(self, extra: Mapping[str, str]) -> UpstreamRequest:
        return replace(self, headers={**self.headers, **extra})

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == low), None)


def join_url(base: str, path: str, query: Mapping[str, Any] | None = None) -> str:
    """`base` (the channel's, never the request's) + `path`, with an encoded query."""
    url = base.rstrip("/") + "/" + path.lstrip("/")
    if query:
        pairs = [(k, v) for k, v in query.items() if v is not None]
        url += ("&" if "?" in url else "?") + urlencode(pairs, doseq=True)
    return url


def json_request(
    method: str, url: str, payload: Any, headers: Mapping[str, str] | None = None
) -> UpstreamRequest:
    return UpstreamRequest(
        method,
        url,
        {"Content-Type": "application/json", **(headers or {})},
        orjson.dumps(payload),
    )


@dataclass(frozen=True, slots=True)
class FormPart:
    """One multipart field: text, or a file when `filename` is set."""

    name: str
    value: bytes | str
    filename: str | None = None
    content_type: str | None = None


def encode_multipart(parts: Iterable[FormPart], boundary: str | None = None) -> tuple[str, bytes]:
    """RFC 7578 form-data body and its Content-Type."""
    boundary = boundary or "llmage" + secrets.token_hex(12)
    out = bytearray()
    for part in parts:
        disposition = f'form-data; name="{_quote(part.name)}"'
        if part.filename is not None:
            disposition += f'; filename="{_quote(part.filename)}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if part.filename is not None or part.content_type:
            out += f"Content-Type: {part.content_type or 'application/octet-stream'}\r\n".encode()
        out += b"\r\n"
        out += part.value.encode() if isinstance(part.value, str) else part.value
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", bytes(out)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def multipart_request(
    method: str, url: str, parts: Iterable[FormPart], headers: Mapping[str, str] | None = None
) -> UpstreamRequest:
    ctype, body = encode_multipart(parts)
    return UpstreamRequest(method, url, {"Content-Type": ctype, **(headers or {})}, body)


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    status: int
    headers: Mapping[str, str]  # names lower-cased
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body as JSON; an unreadable body is the upstream's bug, never a crash here."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                UpstreamKind.UPSTREAM_BUG,
                f"Upstream sent a body that is not JSON (HTTP {self.status})",
                upstream_status=self.status,
            ) from None

    def json_or_none(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None

    def retry_after(self) -> float | None:
        """Seconds from `Retry-After` (delta or HTTP date) or `retry-after-ms`, if sane."""
        raw_ms = self.headers.get("retry-after-ms")
        if raw_ms:
            try:
                return max(0.0, min(float(raw_ms) / 1000, 3600.0))
            except ValueError:
                pass
        raw = self.headers.get("retry-after")
        if not raw:
            return None
        try:
            return max(0.0, min(float(raw), 3600.0))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        from time import time

        return max(0.0, min(when.timestamp() - time(), 3600.0))


def dig(data: Any, *path: str | int) -> Any:
    """`data[a][b]...` or None when any step is missing or of the wrong shape."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(data, list) or not -len(data) <= step < len(data):
                return None
            data = data[step]
        else:
            if not isinstance(data, dict):
                return None
            data = data.get(step)
    return data
