"""Kling error bodies → one error kind (PROVIDERS §1.3, §6).

Every reply is `{code, message, request_id, data}`; `code == 0` is success and anything else is
an error EVEN WITH HTTP 200. Classify on `code` first, the HTTP status second.
"""

from __future__ import annotations

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.providers.tasks import classify_http
from llmage.providers.transport import scrub
from llmage.providers.wire import UpstreamReply, dig

K = UpstreamKind
CODES: dict[int, UpstreamKind] = {
    1000: K.AUTH,  # authentication failed
    1001: K.AUTH,  # Authorization empty
    1002: K.AUTH,  # Authorization invalid
    1003: K.AUTH,  # token not yet valid (nbf)
    1004: K.AUTH,  # token expired
    1100: K.AUTH,  # account exception: the channel's account, never the user
    1101: K.QUOTA,  # account in arrears
    1102: K.QUOTA,  # resource pack used up or expired
    1103: K.MODEL_NOT_ENABLED,  # no permission for this API or model
    1200: K.BAD_REQUEST,  # invalid request parameters
    1201: K.BAD_REQUEST,  # invalid key or value
    1202: K.BAD_REQUEST,  # invalid method
    1203: K.TASK_GONE,  # resource not found (a task; a model: see below)
    1300: K.INPUT_MODERATION,  # platform policy
    1301: K.INPUT_MODERATION,  # content security
    1302: K.RATE_LIMITED,  # rate limit
    1303: K.RATE_LIMITED,  # concurrency / QPS above the package
    1304: K.AUTH,  # IP whitelist: a channel setting
    5000: K.RETRYABLE,  # internal error
    5001: K.RETRYABLE,  # maintenance
    5002: K.RETRYABLE,  # timeout or backlog
}


def body_code(reply: UpstreamReply) -> int | None:
    code = dig(reply.json_or_none(), "code")
    if isinstance(code, bool) or not isinstance(code, int | str):
        return None
    try:
        return int(code)
    except ValueError:
        return None


def classify(reply: UpstreamReply) -> UpstreamError | None:
    code = body_code(reply)
    if reply.ok and code == 0:
        return None
    message = scrub(str(dig(reply.json_or_none(), "message") or f"Upstream error {reply.status}"))
    kind = CODES.get(code) if code is not None else None
    if code == 1203 and "model" in message.lower():
        kind = K.MODEL_NOT_ENABLED  # the model, not a task, is what was not found
    if kind is None:
        if reply.ok:
            # HTTP 200 with an unknown non-zero code (or none at all): not a success to parse
            kind = K.UPSTREAM_BUG
        else:
            err = classify_http(reply, message)
            err.upstream_code = str(code) if code is not None else None
            return err
    return UpstreamError(
        kind,
        message,
        upstream_status=reply.status,
        upstream_code=str(code) if code is not None else None,
        retry_after=reply.retry_after(),
    )


_MODERATION_WORDS = ("risk", "content security", "sensitive", "moderation", "风控", "审核", "敏感")


def failure_kind(message: str) -> UpstreamKind:
    """A task that ended `failed`: Kling gives only `task_status_msg`; a risk-control refusal of
    the result is output moderation, anything else the upstream's own failure."""
    low = message.lower()
    if any(w in low for w in _MODERATION_WORDS):
        return K.OUTPUT_MODERATION
    return K.RETRYABLE
