"""Who is calling, for every console route: FastAPI dependencies and the session cookies.

Contract (stable names; other console modules build on them):

- `current_user` -> `ConsoleUser`: the principal of the `llmage_session` cookie (a server-side
  session, see services/sessions.py). No cookie, an unknown, expired or logged-out session, or a
  disabled user: 401 `{"error": {"message", "type": "authentication_error", "param": null,
  "code": "not_authenticated"}}`. On an unsafe method (anything but GET, HEAD, OPTIONS) it also
  runs the CSRF check below, so a route cannot forget it. `CurrentUser` is the annotated form.
- `require_admin` -> `ConsoleUser` with role admin: either the cookie session as above (CSRF
  included) or, for scripts, `Authorization: Bearer sk-...` of an admin user's API key (no CSRF:
  a header a browser never adds by itself). A bearer header, when present, is the only credential
  considered: a bad one is 401 even with a good cookie. Not logged in: 401; logged in but not an
  admin: 403 `code: "forbidden"`. `AdminUser` is the annotated form. The role is read from the
  database on every call (not from the API key cache).
- CSRF (double submit bound to the session): the `X-CSRF-Token` header must equal the
  `llmage_csrf` cookie, and both must equal the HMAC of this session's id (so a token planted
  by a sibling subdomain or kept from an old session fails). Plus an origin check: `Origin`, if
  sent, must be this server's own origin, `LLMAGE_PUBLIC_BASE_URL`'s, or one of
  `LLMAGE_CONSOLE_ORIGINS` (`null` never is); `Sec-Fetch-Site`, if sent, must be `same-origin` or
  `none`. Refusal: 403 `code: "csrf_failed"` with a message naming what was wrong.
- `same_origin`: the origin check alone, for unsafe routes used before a session exists (login,
  register, SMS): it stops another site from logging a victim into the attacker's account.
- `set_session_cookies(response, request, opened)` after a login, `clear_session_cookies` after
  logout. The session cookie is HttpOnly, SameSite=Lax, Path=/; the CSRF cookie is readable by
  the page's JavaScript (it must copy it into the header) and equally SameSite=Lax. Both are
  Secure when the request came over https (or `LLMAGE_COOKIE_SECURE` says so).

Scripts use the same API: `POST /api/auth/login` answers the CSRF token in its body too, so a
client with a cookie jar sends it back as `X-CSRF-Token`.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Security
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import Request
from starlette.responses import Response

from llmage.domain.errors import CsrfRejected, Forbidden, NotAuthenticated
from llmage.domain.principal import ConsoleUser
from llmage.services.platform import Platform
from llmage.services.sessions import OpenedSession

SESSION_COOKIE = "llmage_session"
CSRF_COOKIE = "llmage_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_session_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="session",
    description="Console session cookie, set by POST /api/auth/login",
)
_csrf_header = APIKeyHeader(
    name=CSRF_HEADER,
    auto_error=False,
    scheme_name="csrf",
    description="Copy of the llmage_csrf cookie; required on unsafe cookie-authenticated calls",
)
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="admin_key",
    description="An admin user's API key (sk-...), accepted by admin routes only",
)


def console_platform(request: Request) -> Platform:
    p: Platform = request.app.state.platform
    return p


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _allowed_origins(request: Request) -> set[str]:
    settings = console_platform(request).settings
    netloc = request.url.netloc.lower()
    allowed = {f"{request.url.scheme}://{netloc}"}
    if request.url.scheme == "http":
        # Behind a TLS-terminating proxy the app sees http while the page is https on the same
        # host. The other way round (an http page writing to an https server) stays refused.
        allowed.add(f"https://{netloc}")
    for url in (settings.public_base_url, *settings.console_origins):
        origin = _origin_of(url) if url else None
        if origin:
            allowed.add(origin)
    return allowed


def check_origin(request: Request) -> None:
    """Refuse a browser request sent by another site (see the module docstring)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
        raise CsrfRejected(
            f"Cross-site request refused (Sec-Fetch-Site: {fetch_site})", param="Origin"
        )
    origin = request.headers.get("origin")
    if origin is None:
        return  # not a browser, or a same-origin GET-like navigation: the token still rules
    if origin.lower() not in _allowed_origins(request):
        raise CsrfRejected(
            f"Request from origin {origin!r} refused: only this server's own pages may call it",
            param="Origin",
        )


def check_csrf(request: Request, user: ConsoleUser, header: str | None) -> None:
    check_origin(request)
    if not header:
        raise CsrfRejected(
            f"Missing {CSRF_HEADER} header: copy the {CSRF_COOKIE} cookie into it",
            param=CSRF_HEADER,
        )
    cookie = request.cookies.get(CSRF_COOKIE)
    sessions = console_platform(request).sessions
    if cookie != header or not sessions.csrf_ok(user, header):
        raise CsrfRejected(
            f"{CSRF_HEADER} does not match this session's {CSRF_COOKIE} cookie; "
            "reload the page or log in again",
            param=CSRF_HEADER,
        )


async def same_origin(request: Request) -> None:
    """Dependency: the origin check for unsafe routes that run before any session exists."""
    if request.method not in SAFE_METHODS:
        check_origin(request)


async def current_user(
    request: Request,
    token: Annotated[str | None, Security(_session_cookie)] = None,
    csrf: Annotated[str | None, Security(_csrf_header)] = None,
) -> ConsoleUser:
    if not token:
        raise NotAuthenticated()
    user = await console_platform(request).sessions.resolve(token)
    if user is None:
        raise NotAuthenticated("Session expired or ended: log in again")
    if request.method not in SAFE_METHODS:
        check_csrf(request, user, csrf)
    request.state.console_user = user
    return user


async def require_admin(
    request: Request,
    token: Annotated[str | None, Security(_session_cookie)] = None,
    csrf: Annotated[str | None, Security(_csrf_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> ConsoleUser:
    p = console_platform(request)
    authorization = request.headers.get("authorization")
    if authorization:
        # The key cache answers "whose key"; the role comes fresh from the database.
        auth = await p.keys.authenticate(authorization)
        user = await p.sessions.admin_by_key(auth)
        if user is None:
            raise NotAuthenticated("Invalid API key")
    else:
        user = await current_user(request, token, csrf)
    if not user.is_admin:
        raise Forbidden("This route needs the admin role")
    request.state.console_user = user
    return user


CurrentUser = Annotated[ConsoleUser, Depends(current_user)]
AdminUser = Annotated[ConsoleUser, Depends(require_admin)]
SameOrigin = Depends(same_origin)


def _secure(request: Request) -> bool:
    configured = console_platform(request).settings.cookie_secure
    return configured if configured is not None else request.url.scheme == "https"


def set_session_cookies(response: Response, request: Request, opened: OpenedSession) -> None:
    max_age = console_platform(request).sessions.ttl_seconds
    secure = _secure(request)
    response.set_cookie(
        SESSION_COOKIE,
        opened.token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
    )
    # Readable by the page's JavaScript on purpose: it copies it into X-CSRF-Token.
    response.set_cookie(
        CSRF_COOKIE,
        opened.csrf,
        max_age=max_age,
        path="/",
        httponly=False,
        samesite="lax",
        secure=secure,
    )


def clear_session_cookies(response: Response, request: Request) -> None:
    secure = _secure(request)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure)
    response.delete_cookie(CSRF_COOKIE, path="/", samesite="lax", secure=secure)
