"""The console API's error envelope: `{"error": {"message", "type", "param", "code"}}`.

The same object as the OpenAI dialect (scripts already parse it), plus `allowed` when the
parameter has a fixed set of values, and `Retry-After` on throttling.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from llmage.domain.errors import (
    InvalidParameter,
    InvalidRequest,
    LlmageError,
    MissingParameter,
    TooManyAttempts,
)


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


def from_validation(errors: list[dict[str, Any]]) -> LlmageError:
    """A request-model validation failure as one error naming the field."""
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ())]
    param = ".".join(loc[1:]) or None
    kind = str(first.get("type", ""))
    msg = str(first.get("msg", "Invalid request"))
    if param is None:
        return InvalidRequest(msg)
    if kind == "missing":
        return MissingParameter(param)
    if kind == "extra_forbidden":
        return InvalidRequest(f"Unknown field: {param}", param=param)
    return InvalidParameter(f"Invalid {param}: {msg.removeprefix('Value error, ')}", param=param)
