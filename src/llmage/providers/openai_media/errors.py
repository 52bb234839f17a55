"""OpenAI error bodies → one error kind (PROVIDERS §1.3, §8, §9).

`{"error": {"message", "type", "param", "code"}}` with an HTTP status. Classify on the code and
type first, the status second; keep the upstream code verbatim for logs.
"""

from __future__ import annotations

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.providers.tasks import classify_http
from llmage.providers.transport import scrub
from llmage.providers.wire import UpstreamReply, dig

_BALANCE = ("insufficient_quota", "billing_hard_limit_reached", "billing_not_active")
_MODERATION = ("moderation_blocked", "content_policy_violation", "content_filter", "safety")
_MODEL = ("model_not_found", "model_not_available", "unsupported_model")


def classify(reply: UpstreamReply) -> UpstreamError | None:
    if reply.ok:
        return None
    data = reply.json_or_none()
    code = str(dig(data, "error", "code") or "")
    etype = str(dig(data, "error", "type") or "")
    message = scrub(str(dig(data, "error", "message") or f"Upstream error {reply.status}"))
    words = f"{code} {etype}".lower()
    kind: UpstreamKind | None = None
    if any(w in words for w in _BALANCE):
        kind = UpstreamKind.QUOTA
    elif any(w in words for w in _MODERATION):
        kind = UpstreamKind.INPUT_MODERATION
    elif any(w in words for w in _MODEL) or (reply.status == 404 and "model" in words):
        kind = UpstreamKind.MODEL_NOT_ENABLED
    elif reply.status == 401 or "invalid_api_key" in words:
        kind = UpstreamKind.AUTH
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


def failure_kind(code: str | None) -> UpstreamKind:
    """A video that ended `failed`: moderation of the result, or the upstream's own failure."""
    words = (code or "").lower()
    if any(w in words for w in _MODERATION) or "moderation" in words:
        return UpstreamKind.OUTPUT_MODERATION
    return UpstreamKind.RETRYABLE
