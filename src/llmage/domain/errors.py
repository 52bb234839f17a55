"""The one error hierarchy. Each dialect maps it to its own wire shape in exactly one place."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum


class LlmageError(Exception):
    """Base of every error a client may see. `status` is the HTTP status for all dialects."""

    status: int = 400
    type: str = "invalid_request_error"  # OpenAI error `type`
    code: str | None = None  # OpenAI error `code`
    usage_id: str | None = None  # the failed call's usage record, if it got one

    headers: dict[str, str] | None = None  # extra response headers (Retry-After ...)

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        allowed: Sequence[object] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.allowed = tuple(allowed) if allowed is not None else None
        if code is not None:
            self.code = code

    @property
    def described(self) -> str:
        """The message with the allowed values, unless the message already lists them."""
        if self.allowed and "allowed" not in self.message.lower():
            return f"{self.message} (allowed: {', '.join(map(str, self.allowed))})"
        return self.message


class InvalidApiKey(LlmageError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"

    def __init__(self, message: str = "Invalid API Key") -> None:
        super().__init__(message)


class PermissionDenied(LlmageError):
    status = 403
    type = "permission_error"
    code = "model_not_allowed"


class InvalidRequest(LlmageError):
    """Malformed body, wrong types, values out of range."""


class MissingParameter(InvalidRequest):
    code = "missing_required_parameter"

    def __init__(self, param: str) -> None:
        super().__init__(f"Missing required parameter: {param}", param=param)


class InvalidParameter(InvalidRequest):
    code = "invalid_value"


class PayloadTooLarge(LlmageError):
    status = 413
    code = "payload_too_large"


class NotFound(LlmageError):
    status = 404
    code = "not_found"


class UnknownModel(NotFound):
    code = "model_not_found"

    def __init__(self, model: str, allowed: Sequence[str] | None = None) -> None:
        super().__init__(
            f"The model '{model}' does not exist or is not available",
            param="model",
            allowed=allowed,
        )


class Conflict(LlmageError):
    status = 409
    code = "conflict"


class InsufficientBalance(LlmageError):
    """Not retryable: the SDKs must not hammer an empty account (see x-should-retry)."""

    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"

    def __init__(self, message: str = "Insufficient balance") -> None:
        super().__init__(message)


class SpendLimitExceeded(InsufficientBalance):
    def __init__(self) -> None:
        super().__init__("API key spend limit reached")


class RateLimited(LlmageError):
    """Over a rate or concurrency limit: 429 with Retry-After and x-ratelimit-* headers, which
    every dialect's error response sends (SDKs back off by them)."""

    status = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, kind: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.type = kind  # OpenAI spells the exhausted limit here: "requests", "tokens"
        self.headers = headers


class ClientClosedRequest(LlmageError):
    """The client went away before the answer: nobody reads this (nginx's 499)."""

    status = 499
    type = "client_closed_request"
    code = "client_closed_request"

    def __init__(self) -> None:
        super().__init__("Client closed the request")


class ServiceUnavailable(LlmageError):
    status = 503
    type = "server_error"
    code = "no_available_channel"


class UpstreamKind(StrEnum):
    """What went wrong upstream (PROVIDERS.md §1.3); decides retry, failover, who is at fault and
    what the client sees. Adapters classify on the code in the body, not the HTTP status alone."""

    RETRYABLE = "retryable"  # connect error, 5xx: worth another try or another channel
    RATE_LIMITED = "rate_limited"  # 429 / concurrency: no task was created; retry with backoff
    AUTH = "auth"  # our credential is bad: an operator problem, not the user's
    MODEL_NOT_ENABLED = "model_not_enabled"  # the channel's account cannot use this model
    QUOTA = "upstream_quota"  # our upstream account is out of money (never the user's balance)
    BAD_REQUEST = "bad_request"  # the user's request was refused as invalid
    CONTENT_POLICY = "content_policy"  # chat: the prompt was refused by moderation
    INPUT_MODERATION = "input_moderation"  # task inputs refused by moderation: no retry
    OUTPUT_MODERATION = "output_moderation"  # the result was refused; resubmitting may pass
    TASK_GONE = "task_gone"  # upstream no longer knows the task (expired, unknown id)
    UPSTREAM_BUG = "upstream_bug"  # unparseable answer, protocol violation
    TIMEOUT = "timeout"  # no answer in time: the outcome of the call is unknown

    # The name PROVIDERS.md uses for QUOTA.
    UPSTREAM_BALANCE = "upstream_quota"

    @property
    def channel_problem(self) -> bool:
        """The channel (credential, account, model access) is at fault: log, metric, breaker;
        never billed to the user and never the user's fault."""
        return self in (UpstreamKind.AUTH, UpstreamKind.MODEL_NOT_ENABLED, UpstreamKind.QUOTA)

    @property
    def user_fault(self) -> bool:
        """The user's own request was refused: never counted against a channel."""
        return self in (
            UpstreamKind.BAD_REQUEST,
            UpstreamKind.CONTENT_POLICY,
            UpstreamKind.INPUT_MODERATION,
            UpstreamKind.OUTPUT_MODERATION,
        )

    @property
    def breaks_channel(self) -> bool:
        """Counts towards opening the channel's circuit breaker: the channel failed us (down,
        slow, broken, misconfigured). A rate limit is the channel answering, only busy; the
        user's own refused request says nothing about the channel."""
        return self in (
            UpstreamKind.RETRYABLE,
            UpstreamKind.TIMEOUT,
            UpstreamKind.UPSTREAM_BUG,
            UpstreamKind.AUTH,
            UpstreamKind.MODEL_NOT_ENABLED,
            UpstreamKind.QUOTA,
        )

    @property
    def key_problem(self) -> bool:
        """One key of a pool may be at fault (revoked, its account out of money): another key
        of the same channel is worth a try first."""
        return self in (UpstreamKind.AUTH, UpstreamKind.QUOTA)

    @property
    def transient(self) -> bool:
        """The same call may succeed later on the same channel (after backoff)."""
        return self in (UpstreamKind.RETRYABLE, UpstreamKind.RATE_LIMITED)


class UpstreamError(LlmageError):
    status = 502
    type = "upstream_error"

    def __init__(
        self,
        kind: UpstreamKind,
        message: str,
        *,
        upstream_status: int | None = None,
        upstream_code: str | None = None,
        retry_after: float | None = None,
    ):
        # Only the user's own mistakes are shown as 4xx; the message never carries credentials.
        super().__init__(message, code=kind.value)
        self.kind = kind
        self.upstream_status = upstream_status
        self.upstream_code = upstream_code  # the provider's own code, verbatim (for logs)
        self.retry_after = retry_after  # seconds, from Retry-After or the provider's hint
        if kind in (
            UpstreamKind.BAD_REQUEST,
            UpstreamKind.CONTENT_POLICY,
            UpstreamKind.INPUT_MODERATION,
            UpstreamKind.OUTPUT_MODERATION,
        ):
            self.status = 400
            self.type = "invalid_request_error"
        elif kind is UpstreamKind.TIMEOUT:
            self.status = 504

    def redact(self, redactor: Callable[[str], str]) -> UpstreamError:
        """The message without what `redactor` removes (credentials, upstream addresses)."""
        self.message = redactor(self.message)
        self.args = (self.message,)
        return self

    @property
    def retryable(self) -> bool:
        """Worth another channel. A timeout is not: the upstream may still be working (and
        billing us) on it."""
        return self.kind.transient or self.kind.channel_problem


class NotAuthenticated(LlmageError):
    """No valid console session (or admin key): log in first."""

    status = 401
    type = "authentication_error"
    code = "not_authenticated"

    def __init__(self, message: str = "Not logged in: log in to use the console API") -> None:
        super().__init__(message)


class Forbidden(LlmageError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class CsrfRejected(Forbidden):
    """A cookie-authenticated unsafe request without a matching CSRF token or from elsewhere."""

    code = "csrf_failed"


class TooManyAttempts(LlmageError):
    """A console throttle (login, SMS, code guessing) refused; `retry_after` is in seconds."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.retry_after = max(1, int(retry_after + 0.999))
