"""new-api error shape (seed 004): `{"code", "message", "param", "type"}` at the top level."""

from __future__ import annotations

from starlette.responses import Response

from llmage.dialects.http import JSONBytes
from llmage.domain.errors import InsufficientBalance, LlmageError


def error_response(exc: LlmageError) -> Response:
    message = exc.message
    if exc.allowed:
        message = f"{message} (allowed: {', '.join(map(str, exc.allowed))})"
    headers = {"x-should-retry": "false"} if isinstance(exc, InsufficientBalance) else {}
    return JSONBytes(
        {"code": exc.code, "message": message, "param": exc.param, "type": exc.type},
        status_code=exc.status,
        headers=headers,
    )
