"""The console API's error envelope: `{"error": {"message", "type", "param", "code"}}`.

The same object as the OpenAI dialect (scripts already parse it), plus `allowed` when the
parameter has a fixed set of values, and `Retry-After` on throttling.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from llmage.domain.errors import LlmageError, TooManyAttempts


def error_body(exc: LlmageError) -> dict[str, Any]:
    err: dict[str, Any] = {
        "message": exc.described,
        "type": exc.type,
        "param": exc.param,
        "code": exc.code,
    }
    if exc.allowed:
        err["allowed"] = [str(a) for a in exc.allowed]
    return {"error": err}


def error_response(exc: LlmageError) -> Response:
    headers = {"Cache-Control": "no-store"}
    if isinstance(exc, TooManyAttempts):
        headers["Retry-After"] = str(exc.retry_after)
    return Response(
        orjson.dumps(error_body(exc)),
        status_code=exc.status,
        media_type="application/json",
        headers=headers,
    )
