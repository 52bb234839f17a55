"""`GET|HEAD /media/{token}`: serve re-hosted media behind an opaque, signed, expiring link.

The token alone decides what is served (storage key, type, filename); there is no path, user
or id in the URL to tamper with. Byte ranges make video seeking work in browsers and players.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from llmage.dialects import api_doc
from llmage.dialects.native.schemas import NativeError
from llmage.storage.contract import Storage
from llmage.storage.signing import MediaTokenError, verify_grant

router = APIRouter(tags=["Media"])

_RESPONSES = api_doc.responses(
    NativeError,
    api_doc.binary_ok(
        "The file, with the type it was stored with",
        ("video/mp4", "image/jpeg", "image/png", "image/webp", "application/octet-stream"),
    ),
    {
        403: {"model": NativeError, "description": "The link is invalid or has expired"},
        416: {
            "model": NativeError,
            "description": "The range misses the file (Content-Range: */size)",
        },
    },
    auth=False,
)

_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")


class Unsatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte span a single `Range` asks for, or None to send the whole object.

    RFC 9110: a header we cannot parse (other unit, bad syntax) is ignored; several ranges we
    also answer with the whole object (allowed, and far simpler than multipart/byteranges).
    Raises Unsatisfiable when the range is well-formed but misses the object entirely.
    """
    if not header:
        return None
    match = _RANGE_RE.fullmatch(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":  # suffix: the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - n), size - 1
    start = int(first)
    if last != "" and int(last) < start:
        return None  # syntactically invalid: ignore the header
    if start >= size:
        raise Unsatisfiable
    end = size - 1 if last == "" else min(int(last), size - 1)
    return start, end


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _disposition(filename: str) -> str:
    # filename= for old clients, filename*= (RFC 6266/5987) for everyone else.
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_")
    return f"inline; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


# Two routes rather than one api_route(methods=[GET, HEAD]): each OpenAPI operation needs its
# own operationId, and client generators key on it.
@router.get(
    "/media/{token}",
    summary="Download re-hosted media by signed link (supports Range)",
    operation_id="media_download",
    response_class=Response,
    responses=_RESPONSES,
)
async def media_get(token: str, request: Request) -> Response:
    return await media(token, request)


@router.head(
    "/media/{token}",
    summary="Size and headers of re-hosted media, without the body",
    operation_id="media_head",
    response_class=Response,
    responses=_RESPONSES,
)
async def media_head(token: str, request: Request) -> Response:
    return await media(token, request)


async def media(token: str, request: Request) -> Response:
    """Serve the object a media token grants (GET or HEAD, ranges). Other dialects reuse it,
    e.g. OpenAI `/v1/videos/{id}/content` answers with the same bytes and headers."""
    platform: Any = request.app.state.platform
    storage: Storage = platform.storage
    now = time.time()
    try:
        grant = verify_grant(token, platform.media_secret, now)
    except MediaTokenError as exc:
        return _error(403, str(exc))

    try:
        size = await storage.size(grant.key)
    except ValueError:  # a signed key our storage cannot hold: a stale link from another setup
        size = None
    if size is None:
        return _error(404, "media not found")

    # Content-addressed keys never change their bytes, so the key itself is a strong validator.
    etag = '"' + hashlib.sha256(grant.key.encode()).hexdigest()[:32] + '"'
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Cache-Control": f"private, max-age={max(0, int(grant.expires - now))}",
        "Content-Disposition": _disposition(grant.filename),
    }
    inm = request.headers.get("if-none-match")
    if inm and (inm.strip() == "*" or etag in (t.strip() for t in inm.split(","))):
        return Response(status_code=304, headers=headers)

    span: tuple[int, int] | None = None
    if_range = request.headers.get("if-range")
    if if_range is None or if_range.strip() == etag:  # a stale If-Range gets the full object
        try:
            span = parse_range(request.headers.get("range"), size)
        except Unsatisfiable:
            return _error(
                416, "requested range not satisfiable", {"Content-Range": f"bytes */{size}"}
            )

    status = 200
    start, end = 0, size - 1
    if span is not None:
        status = 206
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1 if size else 0)

    if request.method == "HEAD" or size == 0:
        return Response(status_code=status, headers=headers, media_type=grant.content_type)
    return StreamingResponse(
        storage.read(grant.key, start, end),
        status_code=status,
        headers=headers,
        media_type=grant.content_type,
    )
