"""Ark / ModelArk error bodies → one error kind (PROVIDERS.md §1.3, §3 "Errors").

Errors are `{"error": {"code", "message", "param", "type"}}` with an HTTP status; a failed task
carries the same `{code, message}` in its `error`. Classify on the code first (verbatim codes
are kept for logs), the HTTP status second. Moderation codes come in families with suffixes
(`InputImageSensitiveContentDetected.PrivacyInformation`), so they are matched by prefix.
"""

from __future__ import annotations

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.providers.tasks import classify_http
from llmage.providers.transport import scrub
from llmage.providers.wire import UpstreamReply, dig

_EXACT = {
    "AuthenticationError": UpstreamKind.AUTH,
    "AccessDenied": UpstreamKind.AUTH,
    "AccountOverdueError": UpstreamKind.QUOTA,
    "QuotaExceeded": UpstreamKind.QUOTA,  # the free quota is used up: terminal, not a rate
    "ModelNotOpen": UpstreamKind.MODEL_NOT_ENABLED,
    "ServerOverloaded": UpstreamKind.RATE_LIMITED,
    "ModelAccountRpmRateLimitExceeded": UpstreamKind.RATE_LIMITED,
    "ModelAccountTpmRateLimitExceeded": UpstreamKind.RATE_LIMITED,
    "MissingParameter": UpstreamKind.BAD_REQUEST,
    "ResourceNotFound": UpstreamKind.TASK_GONE,
    "InternalServiceError": UpstreamKind.RETRYABLE,
    "ServiceUnavailable": UpstreamKind.RETRYABLE,
}
# (prefix, kind), most specific first.
_PREFIXES = (
    ("InvalidEndpointOrModel", UpstreamKind.MODEL_NOT_ENABLED),
    ("InvalidEndpoint", UpstreamKind.MODEL_NOT_ENABLED),
    ("RateLimitExceeded", UpstreamKind.RATE_LIMITED),
    ("InvalidParameter", UpstreamKind.BAD_REQUEST),
    ("AccessDenied", UpstreamKind.AUTH),
)


def moderation_kind(code: str) -> UpstreamKind | None:
    """Input or output moderation, from a code of either family (None: neither)."""
    if "SensitiveContentDetected" in code:
        if code.startswith("Output"):
            return UpstreamKind.OUTPUT_MODERATION
        return UpstreamKind.INPUT_MODERATION
    if code.endswith("RiskDetection"):
        return UpstreamKind.INPUT_MODERATION
    return None


def kind_of(code: str) -> UpstreamKind | None:
    if not code:
        return None
    found = moderation_kind(code) or _EXACT.get(code)
    if found is None:
        found = next((kind for prefix, kind in _PREFIXES if code.startswith(prefix)), None)
    return found


def error_fields(data: object) -> tuple[str, str]:
    """(code, message) of an Ark error body, or of the OpenAPI gateway shape."""
    code = dig(data, "error", "code") or dig(data, "ResponseMetadata", "Error", "Code") or ""
    message = (
        dig(data, "error", "message") or dig(data, "ResponseMetadata", "Error", "Message") or ""
    )
    return str(code), str(message)


def classify(
    reply: UpstreamReply, *, forbidden: UpstreamKind = UpstreamKind.AUTH
) -> UpstreamError | None:
    """`forbidden`: what a 403 without a known code means on this platform (BytePlus: the
    model is not available to the account)."""
    if reply.ok:
        return None
    code, message = error_fields(reply.json_or_none())
    message = scrub(message or f"Upstream error {reply.status}")
    kind = kind_of(code)
    if kind is UpstreamKind.AUTH and reply.status == 403:
        kind = forbidden
    if kind is None and reply.status == 403:
        kind = forbidden
    if kind is None:
        err = classify_http(reply, message)
        err.upstream_code = code or None
        return err
    return UpstreamError(
        kind,
        message,
        upstream_status=reply.status,
        upstream_code=code or None,
        retry_after=reply.retry_after(),
    )
