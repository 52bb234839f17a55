"""The OpenAI error envelope: `{"error": {message, type, param, code}}` with the statuses the
official SDKs map to their exception classes."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from llmage.dialects.http import JSONBytes
from llmage.domain.errors import InsufficientBalance, LlmageError


def error_body(exc: LlmageError) -> dict[str, Any]:
    return {
        "error": {"message": exc.described, "type": exc.type, "param": exc.param, "code": exc.code}
    }


def error_response(exc: LlmageError) -> Response:
    headers = dict(exc.headers or {})
    if isinstance(exc, InsufficientBalance):
        # Topping up is the only fix: tell SDKs not to retry (they retry 429 by default).
        headers["x-should-retry"] = "false"
    return JSONBytes(error_body(exc), status_code=exc.status, headers=headers)
