"""What /openapi.json declares beyond what FastAPI can infer.

Our routes parse their own input (faster than FastAPI models) and the hot chat routes take only
the request, so FastAPI sees neither their query parameters nor, for the lean routes, their path
parameters, and it knows nothing of the dialects' error envelopes. Each route states them with
the helpers here; `install` then completes the generated document in one pass:

- every `{name}` in a path is a declared path parameter (lean routes get theirs from the path);
- an operation that can answer 401 carries the bearer API key as its security requirement;
  the console's `/api/` operations carry instead the session cookie, plus the CSRF header on
  unsafe methods (and, on admin routes, an admin's API key as the alternative);
- FastAPI's own 422 validation shape never appears: validation errors are 400s in the dialect's
  envelope (app.py maps them), which every router declares with `errors`.

tests/api/test_openapi_contract.py keeps this honest: every operation complete, and schemathesis
over all of them against the real app finds no undocumented status, type or body.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

SECURITY_SCHEME = "apiKey"
_PATH_PARAM = re.compile(r"{([^}/]+)}")

# The statuses a client should expect to handle, with what they mean here; any other 4xx or
# 5xx (403, 405, 409, 413, 416 ...) is covered by the range entries, in the same envelope.
_CLIENT_ERRORS = {
    400: "Invalid request: the message names the parameter (and the allowed values)",
    401: "Missing, unknown, revoked or expired API key",
    404: "No such model, task, platform or route (another user's task is a 404 too)",
    429: "Insufficient balance or API-key spend limit (not retryable: x-should-retry: false)",
}
_SERVER_ERRORS = {
    500: "A bug: a plain sentence, never a trace",
    502: "The upstream failed",
    503: "No channel can serve the model right now",
    504: "The upstream did not answer in time",
}


def errors(envelope: type[BaseModel], *, auth: bool = True) -> dict[int | str, dict[str, Any]]:
    """The error responses of a dialect's routes, all in its envelope (`responses=` of a
    router or route). `auth=False` for routes that need no API key."""
    out: dict[int | str, dict[str, Any]] = {}
    for status, description in (*_CLIENT_ERRORS.items(), *_SERVER_ERRORS.items()):
        if status == 401 and not auth:
            continue
        out[status] = {"model": envelope, "description": description}
    out["4XX"] = {"model": envelope, "description": "Any other client error, same envelope"}
    out["5XX"] = {"model": envelope, "description": "Any other server error, same envelope"}
    return out


def responses(
    envelope: type[BaseModel], *ok: Mapping[int | str, dict[str, Any]], auth: bool = True
) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: its success bodies and the dialect's errors."""
    out = errors(envelope, auth=auth)
    for part in ok:
        out.update(part)
    return out


def query(
    name: str, schema: Mapping[str, Any], description: str, *, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": dict(schema),
    }


BOOLEAN = {"type": "boolean"}


def params(*parameters: Mapping[str, Any]) -> dict[str, Any]:
    """`openapi_extra` declaring parameters (FastAPI appends them to any it found itself)."""
    return {"parameters": [dict(p) for p in parameters]}


def merge(*extras: Mapping[str, Any]) -> dict[str, Any]:
    """Several `openapi_extra` fragments as one (parameter lists are concatenated)."""
    out: dict[str, Any] = {}
    for extra in extras:
        for key, value in extra.items():
            if key == "parameters":
                out.setdefault("parameters", []).extend(value)
            elif isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = {**out[key], **value}
            else:
                out[key] = value
    return out


# One server-sent event, as the stream's items are described (OpenAPI 3.2 style).
SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "string",
            "description": "A chunk as JSON; the last event of a complete stream is `[DONE]`",
        },
        "event": {"type": "string"},
        "id": {"type": "string"},
    },
}


def json_ok(
    model: Any, description: str, *, stream: bool = False, headers: Mapping[str, str] = {}
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a 200 JSON body (and, with `stream`, the server-sent events variant);
    `model` is a pydantic model or a union of them."""
    ok: dict[str, Any] = {"model": model, "description": description}
    if stream:
        ok["content"] = {"text/event-stream": {"schema": SSE_EVENT}}
    if headers:
        ok["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return {200: ok}


def binary_ok(description: str, media_types: Iterable[str]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route serving stored media bytes, with ranges and revalidation."""
    body = {t: {"schema": {"type": "string", "format": "binary"}} for t in media_types}
    return {
        200: {"description": description, "content": body},
        206: {"description": "The requested byte range (Content-Range)", "content": body},
        304: {"description": "Not modified (If-None-Match)"},
    }


def install(app: FastAPI) -> None:
    """Complete the app's generated document once, when it is first asked for."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


CONSOLE_PREFIX = "/api/"
_SAFE = ("get", "head", "options")


def _console_errors(operation: dict[str, Any], schemas: Mapping[str, Any]) -> None:
    """Every console operation may answer a 400 (a bad field, a control character in a value),
    and any 4xx or 5xx, in the console's envelope; an authenticated one 401 and 403 too."""
    if "ErrorOut" not in schemas:
        return
    envelope = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
    wanted = {"400": "Invalid field (named in error.param)", "4XX": "Refused", "5XX": "Failed"}
    if operation.get("security"):
        wanted |= {"401": "Not logged in", "403": "CSRF check failed, or not allowed"}
    responses = operation.setdefault("responses", {})
    for status, what in wanted.items():
        responses.setdefault(status, {"description": what, "content": envelope})


def _console_security(operation: dict[str, Any]) -> None:
    """FastAPI lists each scheme a console route reads as an alternative; what the route
    requires is the session cookie AND, on an unsafe method, the CSRF header."""
    schemes = {name for alt in operation.get("security", ()) for name in alt}
    if "session" not in schemes:
        operation.pop("security", None)  # public: sign-up, login, payment notify
        return
    method = operation.get("x-method", "")
    need: dict[str, list[str]] = {"session": []}
    if "csrf" in schemes and method not in _SAFE:
        need["csrf"] = []
    alternatives: list[dict[str, list[str]]] = [need]
    if "admin_key" in schemes:
        alternatives.append({"admin_key": []})
    operation["security"] = alternatives


def complete(spec: dict[str, Any]) -> dict[str, Any]:
    all_schemas = spec.get("components", {}).get("schemas", {})
    for path, operations in spec.get("paths", {}).items():
        in_path = _PATH_PARAM.findall(path)
        for method, operation in operations.items():
            operation["x-method"] = method
            declared = {
                p.get("name") for p in operation.get("parameters", ()) if p.get("in") == "path"
            }
            for name in in_path:
                if name not in declared:
                    operation.setdefault("parameters", []).append(
                        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                    )
            responses = operation.get("responses", {})
            responses.pop("422", None)
            if path.startswith(CONSOLE_PREFIX):
                _console_security(operation)
                _console_errors(operation, all_schemas)
            elif "401" in responses:
                operation["security"] = [{SECURITY_SCHEME: []}]
            operation.pop("x-method", None)
    components = spec.setdefault("components", {})
    schemas = components.get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An llmage API key: `Authorization: Bearer sk-...`",
    }
    return spec
