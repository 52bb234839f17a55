"""Vidu error bodies and failure codes → one error kind (PROVIDERS.md §1.3, §5).

An error reply is HTTP + `{"code", "reason", "message", "metadata": {"trace_id"}}`. Classify on
`reason` (the HTTP status says little: `CreditInsufficient`, the upstream account's own balance,
comes as a 400 like any bad field); the HTTP status only for reasons this table does not know.
A failed task carries the same words in the query reply's `err_code`, with no message.
"""

from __future__ import annotations

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.providers.tasks import classify_http
from llmage.providers.transport import scrub
from llmage.providers.wire import UpstreamReply, dig

_KIND = UpstreamKind
REASONS: dict[str, UpstreamKind] = {
    # 400: the request itself
    "BadRequest": _KIND.BAD_REQUEST,
    "FieldLacking": _KIND.BAD_REQUEST,
    "FieldUnwanted": _KIND.BAD_REQUEST,
    "FieldItemCountOutOfRange": _KIND.BAD_REQUEST,
    "FieldInvalid": _KIND.BAD_REQUEST,
    "PageSizeOutOfRange": _KIND.BAD_REQUEST,
    "ImageDownloadFailure": _KIND.BAD_REQUEST,
    "ImageFormatInvalid": _KIND.BAD_REQUEST,
    "ImageCheckBodyJointsFailed": _KIND.BAD_REQUEST,
    "ImageCheckFaceFailed": _KIND.BAD_REQUEST,
    "ImageObjectsUndetected": _KIND.BAD_REQUEST,
    # 400: another operation on the same thing is under way; nothing was created, try later
    "OperationInProcess": _KIND.RATE_LIMITED,
    # 400: moderation of the prompt / the inputs, and of the result
    "TaskPromptPolicyViolation": _KIND.INPUT_MODERATION,
    "AuditSubmitIllegal": _KIND.INPUT_MODERATION,
    "CreationPolicyViolation": _KIND.OUTPUT_MODERATION,
    # 400: the channel's account, never the user's balance
    "CreditInsufficient": _KIND.QUOTA,
    "ModelUnavailable": _KIND.MODEL_NOT_ENABLED,
    "UserCancelled": _KIND.BAD_REQUEST,
    # 401 / 403
    "Unauthorized": _KIND.AUTH,
    "Forbidden": _KIND.AUTH,
    # 404
    "TaskNotFound": _KIND.TASK_GONE,
    "CreationNotFound": _KIND.TASK_GONE,
    "NotFound": _KIND.TASK_GONE,
    # 409 / 499 / 500: the call may have been taken; a create is recovered, a poll retried
    "Conflict": _KIND.RETRYABLE,
    "Canceled": _KIND.RETRYABLE,
    "InternalServiceFailure": _KIND.RETRYABLE,
    # 429: concurrency and rate limits (no task was created)
    "QuotaExceeded": _KIND.RATE_LIMITED,
    "TooManyRequests": _KIND.RATE_LIMITED,
    "SystemThrottling": _KIND.RATE_LIMITED,
}

# What a failed task's `err_code` means to the user (the query reply has no message).
_FAILED_TEXT = {
    "CreationPolicyViolation": "the generated video did not pass Vidu's content review",
    "TaskPromptPolicyViolation": "the prompt did not pass Vidu's content review",
    "AuditSubmitIllegal": "the input did not pass Vidu's content review",
    "ImageDownloadFailure": "Vidu could not download an input image",
    "ImageFormatInvalid": "an input image has a format Vidu does not accept",
    "ImageCheckBodyJointsFailed": "Vidu found no usable body pose in an input image",
    "ImageCheckFaceFailed": "Vidu found no usable face in an input image",
    "ImageObjectsUndetected": "Vidu found no subject in an input image",
    "UserCancelled": "the task was cancelled at Vidu",
    "Canceled": "the task was cancelled at Vidu",
    "CreditInsufficient": "the upstream account ran out of credits",
    "InternalServiceFailure": "Vidu failed to generate the video",
}


# The kinds a finished task's `err_code` keeps; any other code is Vidu's own failure.
_FAILED_KINDS = frozenset(
    {
        UpstreamKind.INPUT_MODERATION,
        UpstreamKind.OUTPUT_MODERATION,
        UpstreamKind.BAD_REQUEST,
        UpstreamKind.QUOTA,
        UpstreamKind.TASK_GONE,
    }
)


def classify(reply: UpstreamReply) -> UpstreamError | None:
    if reply.ok:
        return None
    data = reply.json_or_none()
    reason = dig(data, "reason")
    reason = str(reason) if isinstance(reason, str) and reason else None
    text = dig(data, "message")
    message = scrub(str(text)) if isinstance(text, str) and text else None
    if message is None:
        message = f"Vidu answered {reason}" if reason else f"Upstream error {reply.status}"
    kind = REASONS.get(reason or "")
    if kind is None:
        err = classify_http(reply, message)
        err.upstream_code = reason
        return err
    return UpstreamError(
        kind,
        message,
        upstream_status=reply.status,
        upstream_code=reason,
        retry_after=reply.retry_after(),
    )


def failure(err_code: str | None) -> tuple[UpstreamKind, str, str]:
    """A task that ended `failed`: (kind, code, message). The kind decides the words the user
    sees; an unknown or empty code is Vidu's own failure (nothing charged either way)."""
    code = err_code or "failed"
    kind = REASONS.get(code, UpstreamKind.RETRYABLE)
    if kind not in _FAILED_KINDS or code in ("UserCancelled", "Canceled"):
        kind = UpstreamKind.RETRYABLE  # reported as Vidu's own failure, its code verbatim
    text = _FAILED_TEXT.get(code)
    message = f"Vidu: {text} ({code})" if text else f"Vidu failed the task ({code})"
    return kind, code, message
