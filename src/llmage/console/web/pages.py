"""The console's HTML pages and `/docs`: server-rendered Jinja2, autoescaped, with a strict CSP.

The pages are thin: they render the layout and the logged-in user, and their script
(`static/console.js`) talks to the JSON API under `/api/` like any other client, writing what it
gets back with `textContent` (never `innerHTML`), so user data is escaped on both paths. Every
HTML answer carries `CONTENT_SECURITY_POLICY`: scripts only from this origin (no inline script,
no eval: Alpine is its CSP build), so an injected `<script>` would not run even if it rendered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from llmage.console.session import SESSION_COOKIE, console_platform
from llmage.console.web.i18n import LANG_COOKIE, MESSAGES, Lang, lang_of, translate
from llmage.console.web.plaza import param_rows, plaza_models
from llmage.domain.errors import NotFound
from llmage.domain.principal import ConsoleUser
from llmage.services.task_views import native_view

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
STATIC_PREFIX = "/static"

# Inline styles are allowed (Swagger UI and uPlot set style attributes); scripts are not.
# form-action allows https: because Alipay's cashier is reached by a form post to its gateway.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self' https:"
)

_env = Environment(
    loader=FileSystemLoader(str(HERE / "templates")),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

router = APIRouter(include_in_schema=False)


def static_files() -> StaticFiles:
    return StaticFiles(directory=str(STATIC_DIR))


async def page_user(request: Request) -> ConsoleUser | None:
    """The session's user, or None: a page shows itself logged out instead of answering 401."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    return await console_platform(request).sessions.resolve(token)


def secure_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def render(
    request: Request,
    template: str,
    user: ConsoleUser | None,
    *,
    status: int = 200,
    **context: Any,
) -> Response:
    lang: Lang = lang_of(request)
    catalogue = {k: translate(lang, k) for k in MESSAGES}
    html = _env.get_template(template).render(
        request=request,
        user=user,
        lang=lang,
        other_lang="en" if lang == "zh" else "zh",
        t=lambda key: translate(lang, key),
        catalogue=catalogue,
        static=STATIC_PREFIX,
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    asked = request.query_params.get("lang")
    if asked == lang:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", path="/")
    return secure_headers(response)


def to_login(request: Request) -> Response:
    return secure_headers(RedirectResponse(f"/login?next={request.url.path}", status_code=303))


@router.get("/")
async def landing(request: Request) -> Response:
    return render(request, "landing.html", await page_user(request))


@router.get("/login")
async def login_page(request: Request) -> Response:
    nxt = request.query_params.get("next", "/keys")
    # Only a local path: an absolute URL here would make the login page an open redirect.
    if not nxt.startswith("/") or nxt.startswith("//"):
        nxt = "/keys"
    return render(request, "login.html", await page_user(request), next_path=nxt)


@router.get("/signup")
async def signup_page(request: Request) -> Response:
    return render(request, "signup.html", await page_user(request))


async def _private(request: Request, template: str) -> Response:
    user = await page_user(request)
    if user is None:
        return to_login(request)
    return render(request, template, user)


@router.get("/keys")
async def keys_page(request: Request) -> Response:
    return await _private(request, "keys.html")


@router.get("/topup")
async def topup_page(request: Request) -> Response:
    return await _private(request, "topup.html")


@router.get("/finance")
async def finance_page(request: Request) -> Response:
    return await _private(request, "finance.html")


@router.get("/docs")
async def docs_page(request: Request) -> Response:
    """Swagger UI from the package's own files: works with no internet."""
    return render(request, "docs.html", await page_user(request))


@router.get("/models")
async def plaza_page(request: Request) -> Response:
    p = console_platform(request)
    base = p.settings.public_base_url or str(request.base_url)
    models = plaza_models(p.catalog, p.settings.currency, base)
    kind = request.query_params.get("kind")
    if kind:
        models = [m for m in models if m.kind == kind]
    return render(request, "plaza.html", await page_user(request), models=models, kind=kind)


@router.get("/admin")
async def admin_page(request: Request) -> Response:
    user = await page_user(request)
    if user is None:
        return to_login(request)
    if not user.is_admin:
        return render(request, "forbidden.html", user, status=403)
    return render(request, "admin.html", user)


@router.get("/playground")
async def playground_page(request: Request) -> Response:
    user = await page_user(request)
    if user is None:
        return to_login(request)
    entries = console_platform(request).catalog.entries()
    chat = [e.default_name for e in entries if e.kind.value == "chat"]
    media = [
        (e.llmid, f"{e.display_name} ({e.kind.value})") for e in entries if e.kind.value != "chat"
    ]
    return render(request, "playground.html", user, chat_models=chat, media_models=media)


@router.get("/playground/form")
async def playground_form(request: Request) -> Response:
    """htmx fragment: the submission form of one image or video model, from its parameters."""
    user = await page_user(request)
    if user is None:
        return secure_headers(HTMLResponse("", status_code=401))
    llmid = request.query_params.get("llmid", "")
    entry = next((e for e in console_platform(request).catalog.entries() if e.llmid == llmid), None)
    if entry is None or entry.kind.value == "chat":
        return secure_headers(HTMLResponse("", status_code=404))
    return render(request, "media_form.html", user, entry=entry, rows=param_rows(entry))


@router.get("/playground/task/{task_id}")
async def playground_task(request: Request, task_id: str) -> Response:
    """htmx fragment: one of the caller's tasks as it is now. The page polls it every 2 s; a
    finished task answers 286, which tells htmx to stop polling."""
    user = await page_user(request)
    if user is None:
        return secure_headers(HTMLResponse("", status_code=401))
    p = console_platform(request)
    try:
        row = await p.tasks.owned(user.user_id, task_id[:64])
    except NotFound:
        return secure_headers(HTMLResponse("", status_code=404))
    base = p.settings.public_base_url or str(request.base_url)
    view = native_view(row, p.media, base)
    status = 286 if row.status.terminal else 200
    return render(request, "task_status.html", user, task=view, status=status)
