"""`GET|HEAD /media/{token}`: serve re-hosted media behind an opaque, sealed, expiring link.

The token alone decides what is served; there is no path, user, id or type in the URL to tamper
with, and a bad, expired or dangling link is one and the same 404. The served type is sniffed from
the bytes against the allow-list (services.media_links): allow-listed media is shown inline,
anything else is an octet-stream attachment, and every answer carries `nosniff` so no browser
second-guesses that. Byte ranges make video seeking work in browsers and players.
"""

from __future__ import annotations

import re
import time
from urllib.parse import quote

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from llmage.dialects import api_doc
from llmage.dialects.http import platform_of
from llmage.dialects.native.schemas import NativeError
from llmage.services.media_links import ServedMedia

router = APIRouter(tags=["Media"])

_RESPONSES = api_doc.responses(
    NativeError,
    api_doc.binary_ok(
        "The file, with the type it was stored with",
        ("video/mp4", "image/jpeg", "image/png", "image/webp", "application/octet-stream"),
    ),
    {
        416: {
            "model": NativeError,
            "description": "The range misses the file (Content-Range: */size)",
        },
    },
    auth=False,
)

_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")

# On every media answer, success or error: the declared type is final, and even if a browser
# were to render one as a document it would get no script, no origin and no plugins.
SAFETY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox",
}


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
    return JSONResponse(
        {"error": message}, status_code=status, headers={**SAFETY_HEADERS, **(headers or {})}
    )


def not_found() -> Response:
    return _error(404, "media not found")


def _disposition(media: ServedMedia) -> str:
    # filename= for old clients, filename*= (RFC 6266/5987) for everyone else.
    kind = "inline" if media.inline else "attachment"
    name = media.filename
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


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
    """Serve the object a media token grants (GET or HEAD, ranges)."""
    return await serve(await platform_of(request).media.links.open(token), request)


async def serve(found: ServedMedia | None, request: Request) -> Response:
    """The media answer for one stored object (None: a 404). Other dialects reuse it, e.g.
    OpenAI `/v1/videos/{id}/content` answers with the same bytes and headers."""
    if found is None:
        return not_found()
    headers = {
        **SAFETY_HEADERS,
        "Accept-Ranges": "bytes",
        "ETag": found.etag,
        "Cache-Control": f"private, max-age={max(0, int(found.expires - time.time()))}",
        "Content-Disposition": _disposition(found),
    }
    size = found.size
    inm = request.headers.get("if-none-match")
    if inm and (inm.strip() == "*" or found.etag in (t.strip() for t in inm.split(","))):
        return Response(status_code=304, headers=headers)

    span: tuple[int, int] | None = None
    if_range = request.headers.get("if-range")
    if if_range is None or if_range.strip() == found.etag:  # a stale If-Range gets it all
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
        return Response(status_code=status, headers=headers, media_type=found.content_type)
    return StreamingResponse(
        platform_of(request).media.links.read(found, start, end),
        status_code=status,
        headers=headers,
        media_type=found.content_type,
    )
