"""new-api error shape (seed 004): `{"code", "message", "param", "type"}` at the top level."""

from __future__ import annotations

import re

from starlette.responses import Response

from llmage.dialects.http import JSONBytes
from llmage.domain.errors import InsufficientBalance, LlmageError

# Catalog parameter names as a new-api client spells them (translate.py maps them in).
CLIENT_NAMES = {
    "image1_file": "image",
    "image2_file": "last_image",
    "image_files": "reference_image_urls",
    "ratio": "aspect_ratio",
}


def in_client_terms(exc: LlmageError) -> LlmageError:
    """Name the field the client sent, not the catalog's slot (`image`, not `image1_file`)."""
    name = CLIENT_NAMES.get(exc.param or "")
    if name is not None and exc.param is not None:
        exc.message = re.sub(rf"(?<!\w){re.escape(exc.param)}(?!\w)", name, exc.message)
        exc.param = name
    return exc


def error_response(exc: LlmageError) -> Response:
    message = exc.described
    headers = dict(exc.headers or {})
    if isinstance(exc, InsufficientBalance):
        headers["x-should-retry"] = "false"
    return JSONBytes(
        {"code": exc.code, "message": message, "param": exc.param, "type": exc.type},
        status_code=exc.status,
        headers=headers,
    )
