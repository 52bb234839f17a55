"""DashScope error codes → error kinds (PROVIDERS.md §1.3, §2).

Errors are `{"request_id", "code", "message"}` with an HTTP status; a failed task carries
`output.code` / `output.message` (or neither). Classify on the code first — exact, then by its
dotted family (`Throttling.RateQuota` → `Throttling`) — and on the HTTP status only when the
code says nothing. The code is kept verbatim for logs.
"""

from __future__ import annotations

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.providers.tasks import classify_http
from llmage.providers.transport import scrub
from llmage.providers.wire import UpstreamReply, dig

K = UpstreamKind

CODES: dict[str, UpstreamKind] = {
    "InvalidApiKey": K.AUTH,
    "AccessDenied": K.AUTH,  # also "current user api does not support synchronous calls"
    "AccessDenied.Unpurchased": K.MODEL_NOT_ENABLED,
    "Model.AccessDenied": K.MODEL_NOT_ENABLED,
    "ModelNotFound": K.MODEL_NOT_ENABLED,
    "CommodityNotPurchased": K.MODEL_NOT_ENABLED,
    "Arrearage": K.QUOTA,
    "PrepaidBillOverdue": K.QUOTA,
    "PostpaidBillOverdue": K.QUOTA,
    "AllocationQuota": K.QUOTA,  # .FreeTierOnly: the free quota is used up
    "Throttling.AllocationQuota": K.QUOTA,  # the quota is used up: terminal, not a rate
    "Throttling": K.RATE_LIMITED,  # .RateQuota, .User, .Api ...: retry later
    "DataInspectionFailed": K.INPUT_MODERATION,
    "InvalidParameter.DataInspection": K.INPUT_MODERATION,
    "DataInspection": K.INPUT_MODERATION,
    "InvalidParameter": K.BAD_REQUEST,
    "MissingParameter": K.BAD_REQUEST,
    "BadRequest": K.BAD_REQUEST,  # .EmptyInput, .EmptyParameters, .EmptyModel, .TooLarge
    "InvalidURL": K.BAD_REQUEST,
    "InvalidFile": K.BAD_REQUEST,
    "UnsupportedOperation": K.BAD_REQUEST,  # cancel of a task that is no longer PENDING
    "RequestTimeOut": K.RETRYABLE,
    "InternalError": K.RETRYABLE,  # .Algo, .Timeout ...
    "SystemError": K.RETRYABLE,
    "ServiceUnavailable": K.RETRYABLE,
}


def kind_of_code(code: str) -> UpstreamKind | None:
    """The kind of a code, exact first, then its dotted prefixes, longest first."""
    parts = code.split(".")
    for end in range(len(parts), 0, -1):
        found = CODES.get(".".join(parts[:end]))
        if found is not None:
            return found
    return None


def classify(reply: UpstreamReply) -> UpstreamError | None:
    data = reply.json_or_none()
    code = str(dig(data, "code") or "")
    if reply.ok and (not code or dig(data, "output") is not None):
        return None  # a 2xx that is an answer (a 2xx with only a code is an error: below)
    message = scrub(str(dig(data, "message") or f"Upstream error {reply.status}"))
    kind = kind_of_code(code) if code else None
    if kind is None:
        err = classify_http(reply, message)
        err.upstream_code = code or None
        return err
    return UpstreamError(
        kind,
        message,
        upstream_status=reply.status,
        upstream_code=code,
        retry_after=reply.retry_after(),
    )


def failure_kind(code: str | None, message: str | None) -> UpstreamKind:
    """Why a task FAILED: moderation of its input or its output, a bad input found while it
    ran, the account, or the provider's own failure (resubmitting may pass)."""
    if not code:
        return K.RETRYABLE
    kind = kind_of_code(code)
    if kind is K.INPUT_MODERATION:
        # Inputs are checked at create; a task that fails moderation later was usually refused
        # for its result, unless the provider says it was the input.
        text = (message or "").lower()
        return K.INPUT_MODERATION if "input" in text else K.OUTPUT_MODERATION
    if kind in (K.BAD_REQUEST, K.QUOTA, K.MODEL_NOT_ENABLED, K.AUTH):
        return kind
    return K.RETRYABLE
