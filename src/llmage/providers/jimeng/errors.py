"""Jimeng error bodies → one error kind (PROVIDERS.md §1.3, §7).

Two shapes. The visual API's own: `{code, message, request_id, data}` where only `code == 10000`
is a success, even under HTTP 200. The Volcengine OpenAPI gateway's, for signature and permission
refusals: `{"ResponseMetadata": {"Error": {"Code", "Message"}}}`. Classify on the code first,
the HTTP status only for a body that says nothing.
"""

from __future__ import annotations

from typing import Any

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.providers.tasks import classify_http
from llmage.providers.transport import scrub
from llmage.providers.wire import UpstreamReply, dig

K = UpstreamKind
OK = 10000
CODES: dict[int, UpstreamKind] = {
    50400: K.AUTH,  # Access Denied: the account, never the user
    50411: K.INPUT_MODERATION,  # input image
    50412: K.INPUT_MODERATION,  # input text
    50413: K.INPUT_MODERATION,  # sensitive or copyrighted words
    50513: K.INPUT_MODERATION,  # input video
    50514: K.INPUT_MODERATION,  # input audio
    50511: K.OUTPUT_MODERATION,  # output image (resubmission may pass)
    50512: K.OUTPUT_MODERATION,  # output text
    50215: K.BAD_REQUEST,  # invalid input
    50429: K.RATE_LIMITED,  # QPS
    50430: K.RATE_LIMITED,  # concurrency
    50500: K.RETRYABLE,  # internal error
    50501: K.RETRYABLE,  # internal RPC error
}
# OpenAPI gateway codes (ResponseMetadata.Error.Code).
GATEWAY: dict[str, UpstreamKind] = {
    "SignatureDoesNotMatch": K.AUTH,
    "InvalidAccessKey": K.AUTH,
    "InvalidCredential": K.AUTH,
    "MissingAuthenticationToken": K.AUTH,
    "InvalidTimestamp": K.AUTH,
    "RequestExpired": K.AUTH,
    "Access Denied": K.AUTH,
    "AccessDenied": K.AUTH,
    "NoFeatAuth": K.MODEL_NOT_ENABLED,
    "FeatNotFound": K.MODEL_NOT_ENABLED,
    "InvalidActionOrVersion": K.UPSTREAM_BUG,
    "FlowLimitExceeded": K.RATE_LIMITED,
    "InternalError": K.RETRYABLE,
    "ServiceUnavailable": K.RETRYABLE,
}


def body_code(data: Any) -> int | None:
    code = dig(data, "code")
    if isinstance(code, bool) or not isinstance(code, int | str):
        return None
    try:
        return int(code)
    except ValueError:
        return None


def classify(reply: UpstreamReply) -> UpstreamError | None:
    data = reply.json_or_none()
    code = body_code(data)
    if reply.ok and code == OK:
        return None
    gateway = dig(data, "ResponseMetadata", "Error", "Code")
    if isinstance(gateway, str) and gateway:
        text = dig(data, "ResponseMetadata", "Error", "Message")
        message = scrub(str(text)) if isinstance(text, str) and text else f"Jimeng: {gateway}"
        kind = GATEWAY.get(gateway)
        if kind is None:
            err = classify_http(reply, message)
            err.upstream_code = gateway
            return err
        return _error(kind, message, reply, gateway)
    text = dig(data, "message")
    fallback = f"Upstream error {reply.status}"
    message = scrub(text) if isinstance(text, str) and text else fallback
    kind = CODES.get(code) if code is not None else None
    if kind is None:
        if reply.ok:
            # HTTP 200 with an unknown code (or none): not a success to parse
            return _error(K.UPSTREAM_BUG, message, reply, str(code) if code is not None else None)
        err = classify_http(reply, message)
        err.upstream_code = str(code) if code is not None else None
        return err
    return _error(kind, message, reply, str(code))


def _error(
    kind: UpstreamKind, message: str, reply: UpstreamReply, code: str | None
) -> UpstreamError:
    return UpstreamError(
        kind,
        message,
        upstream_status=reply.status,
        upstream_code=code,
        retry_after=reply.retry_after(),
    )
