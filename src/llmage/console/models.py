"""Request and response models of the console JSON API (they are its /openapi.json schema).

Requests refuse unknown fields (a typo is a 400 naming it, not a silently ignored setting).
Money goes out twice: as a decimal string in currency units and as integer micro-units.
Times are ISO 8601 UTC strings.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from llmage.domain.money import format_amount

# Control characters other than tab and newlines: PostgreSQL refuses NUL in text, and none of
# them belongs in a name, note or URL. One rule for every console text field and query value.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def control_char_problem(text: str) -> str | None:
    """Why `text` cannot be accepted, or None."""
    if CONTROL_CHARS.search(text):
        return "must not contain control characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text"
    return None


def _clean(text: str) -> str:
    # JSON may carry NUL or lone surrogates; neither can be stored or hashed as UTF-8 text.
    problem = control_char_problem(text)
    if problem:
        raise ValueError(problem)
    return text


Text = Annotated[str, AfterValidator(_clean)]


# A row id in a path: positive and within a 32-bit INTEGER column.
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Money(BaseModel):
    amount: str = Field(description="Currency units, exact decimal string, e.g. '12.500000'")
    micros: int = Field(description="The same amount in integer micro-units (1 unit = 10^6)")

    @classmethod
    def of(cls, micros: int) -> Money:
        return cls(amount=format_amount(micros), micros=micros)


# -- auth ----------------------------------------------------------------------------------------


class RegisterRequest(_Request):
    username: Text = Field(description="3-32 letters, digits or . _ @ -", examples=["alice"])
    password: Text = Field(description="8-128 characters")
    phone: Text | None = Field(
        None, description="Optional; then sms_code (purpose 'register') is required"
    )
    sms_code: Text | None = Field(None, description="Code sent to `phone` for purpose 'register'")


class LoginRequest(_Request):
    username: Text = Field(max_length=64)
    password: Text = Field(max_length=1024)


class SmsCodeRequest(_Request):
    phone: Text = Field(max_length=32, examples=["13800138000"])
    purpose: Literal["login", "register", "reset"]


class SmsLoginRequest(_Request):
    phone: Text = Field(max_length=32)
    code: Text = Field(max_length=16)


class PasswordChangeRequest(_Request):
    password: Text = Field(max_length=1024, description="The current password")
    new_password: Text = Field(description="8-128 characters")


class ResetRequest(_Request):
    phone: Text = Field(max_length=32)
    code: Text = Field(max_length=16, description="Code sent to `phone` for purpose 'reset'")
    new_password: Text = Field(description="8-128 characters")


class UserOut(BaseModel):
    id: int
    username: str
    role: Literal["user", "admin"]


class SessionOut(BaseModel):
    user: UserOut
    csrf_token: str = Field(
        description="Send it back as the X-CSRF-Token header on POST/DELETE (it is also the "
        "llmage_csrf cookie)"
    )
    expires_at: str


class SmsCodeOut(BaseModel):
    sent: bool = True
    expires_in: int = Field(description="Seconds the code stays valid")
    resend_after: int = Field(description="Seconds before another code may be requested")


class OkOut(BaseModel):
    ok: bool = True
    sessions_ended: int = Field(0, description="Other sessions logged out by this change")


# -- me, keys, webhook secret --------------------------------------------------------------------


class MeOut(BaseModel):
    id: int
    username: str
    role: Literal["user", "admin"]
    phone: str | None = Field(description="Masked, e.g. 138****8000")
    created_at: str | None
    currency: str
    balance: Money
    held: Money = Field(description="Reserved by requests and tasks still running")
    available: Money = Field(description="balance - held: what new requests may spend")
    csrf_token: str | None = Field(description="This session's CSRF token (null with a key)")


class KeyCreateRequest(_Request):
    name: Text = Field("default", min_length=1, max_length=128)
    expires_days: float | None = Field(
        None, gt=0, le=3650, description="Expire after this many days (default: never)"
    )
    models: list[Text] | None = Field(
        None,
        max_length=200,
        description="Allow-list of catalog model names or llmids (default: every model)",
    )
    spend_limit: Text | int | float | None = Field(
        None, description="Most this key may ever spend, in currency units (e.g. '20' or 12.5)"
    )


class KeyOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="Enough to recognise the key: sk-abcd…wxyz")
    status: Literal["active", "revoked", "expired"]
    created_at: str | None
    last_used_at: str | None
    expires_at: str | None
    revoked_at: str | None
    models: list[str] | None
    spend_limit: Money | None
    spent: Money


class KeyCreatedOut(KeyOut):
    key: str = Field(description="The API key itself: shown this once, store it now")


class KeyListOut(BaseModel):
    data: list[KeyOut]


class WebhookSecretOut(BaseModel):
    secret: str = Field(description="HMAC-SHA256 key for your task callbacks (whole string)")
    header: str = "X-Llmage-Signature"
    scheme: str = 't=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>'


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None
    allowed: list[str] | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


def errors(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses` entries for the error statuses a route may answer."""
    what = {
        400: "Invalid field (named in error.param)",
        401: "Not logged in, or wrong credentials",
        403: "CSRF check failed, not an admin, or account disabled",
        404: "Not found (or not yours)",
        409: "Already taken",
        429: "Throttled; see Retry-After",
        503: "SMS provider unavailable",
    }
    return {s: {"model": ErrorOut, "description": what.get(s, "Error")} for s in statuses}


# -- admin: users ----------------------------------------------------------------------------


class AdminUserOut(BaseModel):
    id: int
    username: str
    role: Literal["user", "admin"]
    disabled: bool
    phone: str | None
    created_at: str | None
    balance: Money
    held: Money
    available: Money


class AdminUserListOut(BaseModel):
    data: list[AdminUserOut]


class AdminUserUpdate(_Request):
    role: Literal["user", "admin"] | None = None
    disabled: bool | None = Field(
        None, description="A disabled user's sessions and API keys stop working at once"
    )
