"""Native (seed 000) error shape: `{"error": "<sentence>"}`, e.g. 401 "Invalid API Key",
400 "Missing required parameter: prompt", 429 "Insufficient balance"."""

from __future__ import annotations

from starlette.responses import Response

from llmage.dialects.http import JSONBytes
from llmage.domain.errors import LlmageError


def error_message(exc: LlmageError) -> str:
    return exc.described


def error_response(exc: LlmageError) -> Response:
    return JSONBytes({"error": error_message(exc)}, status_code=exc.status, headers=exc.headers)
