"""`/api/auth/*`: sign-up, log-in (password or SMS code), log-out, password change and reset.

Routes that run before a session exists check the request's origin (`SameOrigin`); the others
take `CurrentUser`, which also checks the CSRF token. A successful sign-up or log-in sets the
session and CSRF cookies and answers the CSRF token in the body (for scripts).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from llmage.console.models import (
    LoginRequest,
    OkOut,
    PasswordChangeRequest,
    RegisterRequest,
    ResetRequest,
    SessionOut,
    SmsCodeOut,
    SmsCodeRequest,
    SmsLoginRequest,
    UserOut,
    errors,
    iso,
)
from llmage.console.session import (
    CurrentUser,
    SameOrigin,
    clear_session_cookies,
    console_platform,
    set_session_cookies,
)
from llmage.services.console_auth import Client
from llmage.services.sessions import OpenedSession

router = APIRouter(prefix="/api/auth", tags=["Console: accounts"])


def client_of(request: Request) -> Client:
    host = request.client.host if request.client else "unknown"
    return Client(ip=host, user_agent=request.headers.get("user-agent"))


def _session_out(request: Request, response: Response, opened: OpenedSession) -> SessionOut:
    set_session_cookies(response, request, opened)
    response.headers["Cache-Control"] = "no-store"
    u = opened.user
    return SessionOut(
        user=UserOut(id=u.user_id, username=u.username, role=u.role),
        csrf_token=opened.csrf,
        expires_at=iso(opened.expires_at) or "",
    )


@router.post(
    "/register",
    status_code=201,
    summary="Sign up (username and password; optionally a phone verified by SMS code)",
    dependencies=[SameOrigin],
    responses=errors(400, 403, 409, 429),
)
async def register(body: RegisterRequest, request: Request, response: Response) -> SessionOut:
    opened = await console_platform(request).console_auth.register(
        body.username,
        body.password,
        client_of(request),
        phone=body.phone,
        sms_code=body.sms_code,
    )
    return _session_out(request, response, opened)


@router.post(
    "/login",
    summary="Log in with username and password",
    dependencies=[SameOrigin],
    responses=errors(400, 401, 403, 429),
)
async def login(body: LoginRequest, request: Request, response: Response) -> SessionOut:
    opened = await console_platform(request).console_auth.login(
        body.username, body.password, client_of(request)
    )
    return _session_out(request, response, opened)


@router.post(
    "/sms-code",
    summary="Send a 6-digit code by SMS (valid 5 minutes; 1 a minute, 10 a day per phone)",
    dependencies=[SameOrigin],
    responses=errors(400, 403, 409, 429, 503),
)
async def sms_code(body: SmsCodeRequest, request: Request) -> SmsCodeOut:
    p = console_platform(request)
    ttl = await p.console_auth.send_code(body.phone, body.purpose, client_of(request))
    resend = int(min(r.window for r in p.console_auth.rules.sms_phone))
    return SmsCodeOut(expires_in=ttl, resend_after=resend)


@router.post(
    "/sms-login",
    summary="Log in with a phone number and the code sent to it (purpose 'login')",
    dependencies=[SameOrigin],
    responses=errors(400, 401, 403, 429),
)
async def sms_login(body: SmsLoginRequest, request: Request, response: Response) -> SessionOut:
    opened = await console_platform(request).console_auth.sms_login(
        body.phone, body.code, client_of(request)
    )
    return _session_out(request, response, opened)


@router.post(
    "/logout",
    summary="End this session (the cookie stops working everywhere at once)",
    responses=errors(401, 403),
)
async def logout(user: CurrentUser, request: Request, response: Response) -> OkOut:
    await console_platform(request).sessions.close(user)
    clear_session_cookies(response, request)
    return OkOut()


@router.post(
    "/password",
    summary="Change the password; every other session of this user is logged out",
    responses=errors(400, 401, 403, 429),
)
async def change_password(
    body: PasswordChangeRequest, user: CurrentUser, request: Request
) -> OkOut:
    ended = await console_platform(request).console_auth.change_password(
        user, body.password, body.new_password
    )
    return OkOut(sessions_ended=ended)


@router.post(
    "/reset",
    summary="Set a new password with a code sent to the account's phone (purpose 'reset'); "
    "logs out every session",
    dependencies=[SameOrigin],
    responses=errors(400, 401, 403, 429),
)
async def reset(body: ResetRequest, request: Request) -> OkOut:
    ended = await console_platform(request).console_auth.reset_password(
        body.phone, body.code, body.new_password
    )
    return OkOut(sessions_ended=ended)
