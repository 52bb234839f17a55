"""The console's HTML pages and offline /docs against a real server: language switch, CSP on
every page, logged-out redirects, escaping of user data, and the vendored files' checksums."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from conftest import Stack, running_stack
from llmage.auth.passwords import hash_password
from llmage.console.web import pages
from llmage.console.web.pages import CONTENT_SECURITY_POLICY, STATIC_DIR

PRIVATE = ("/keys", "/topup", "/finance")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack("sqlite", tmp_path_factory.mktemp("pages")) as s:
        yield s


@pytest.fixture
def http(site: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.url, timeout=20.0) as c:
        yield c


def page_paths() -> list[str]:
    return [
        r.path
        for r in pages.router.routes
        if isinstance(r, APIRoute) and "GET" in r.methods and "{" not in r.path
    ]


def session_for(site: Stack, username: str) -> dict[str, str]:
    async def work() -> dict[str, str]:
        uid = await site.platform.accounts.create_user(username, hash_password("password-123"))
        opened = await site.platform.sessions.open(uid)
        return {"llmage_session": opened.token, "llmage_csrf": opened.csrf}

    return site.admin.call(work())


def test_landing_is_chinese_first_and_switches_to_english(http: httpx.Client) -> None:
    r = http.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "模型广场" in r.text and 'lang="zh-CN"' in r.text
    r = http.get("/?lang=en")
    assert "Model plaza" in r.text and 'lang="en"' in r.text
    assert "llmage_lang=en" in r.headers["set-cookie"]
    # The cookie keeps the choice on the next page; an unknown language falls back to Chinese.
    assert "Log in" in http.get("/login").text
    assert "登录" in http.get("/login?lang=xx", cookies={"llmage_lang": "fr"}).text


@pytest.mark.parametrize("path", page_paths())
def test_every_page_carries_the_csp(http: httpx.Client, site: Stack, path: str) -> None:
    cookies = session_for(site, f"csp{abs(hash(path)) % 10**8}")
    for jar in ({}, cookies):
        r = http.get(path, cookies=jar)
        assert r.status_code in (200, 303, 401, 403, 404), (path, r.status_code)
        assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "script-src 'self';" in CONTENT_SECURITY_POLICY
        if r.status_code == 200:
            # No inline script may be needed: every <script> with code has a src.
            for tag, body in re.findall(r"<script([^>]*)>(.*?)</script>", r.text, re.S):
                assert "src=" in tag or 'type="application/json"' in tag, (path, tag)
                assert "src=" in tag or body.strip().startswith("{")


def test_private_pages_send_a_logged_out_visitor_to_login(http: httpx.Client) -> None:
    for path in PRIVATE:
        r = http.get(path)
        assert r.status_code == 303
        assert r.headers["location"] == f"/login?next={path}"


def test_login_next_is_a_local_path_only(http: httpx.Client) -> None:
    body = http.get("/login", params={"next": "//evil.example/x"}).text
    assert 'data-next="/keys"' in body
    assert "evil.example" not in body
    assert 'data-next="/finance"' in http.get("/login?next=/finance").text


def test_user_names_render_escaped(http: httpx.Client, site: Stack) -> None:
    name = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    cookies = session_for(site, name)
    for path in (*PRIVATE, "/"):
        body = http.get(path, cookies=cookies).text
        assert "<script>alert" not in body and "<img src=x" not in body
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body


def test_docs_work_offline_from_vendored_files(http: httpx.Client) -> None:
    r = http.get("/docs")
    assert r.status_code == 200
    refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert refs and all(ref.startswith("/") and not ref.startswith("//") for ref in refs), refs
    for ref in refs:
        asset = http.get(ref)
        assert asset.status_code == 200, ref
        assert asset.content
    assert http.get("/openapi.json").json()["info"]["title"] == "llmage"
    assert http.get("/redoc").status_code == 404  # would load from a CDN


def test_pages_reference_no_outside_host(http: httpx.Client, site: Stack) -> None:
    cookies = session_for(site, "nocdn")
    for path in page_paths():
        body = http.get(path, cookies=cookies).text
        for ref in re.findall(r'(?:src|href)="([^"]+)"', body):
            assert not re.match(r"^(https?:)?//", ref), (path, ref)


def test_vendored_files_match_their_checksums() -> None:
    vendor = STATIC_DIR / "vendor"
    listed = {}
    for line in (vendor / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name.removeprefix("./")] = digest
    on_disk = {
        str(p.relative_to(vendor)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(vendor.rglob("*"))
        if p.is_file() and p.name not in ("SHA256SUMS", "README.md")
    }
    assert on_disk == listed
    for lib in ("htmx", "alpine-csp", "uplot"):
        assert Path(vendor / f"{lib}.LICENSE").is_file()
    assert (vendor / "swagger-ui" / "LICENSE").is_file()


def test_model_plaza_lists_every_catalog_model(http: httpx.Client, site: Stack) -> None:
    body = http.get("/models").text
    catalog = site.platform.catalog
    for entry in catalog.entries():
        assert f'id="model-{entry.llmid}"' in body
    chat = next(e for e in catalog.entries() if e.kind.value == "chat")
    assert f"{site.url}/v1/chat/completions" in body and "sk-YOUR-KEY" in body
    video = next(e for e in catalog.entries() if e.kind.is_video and e.params)
    assert f"{site.url}/llmage/video" in body
    # The parameter table comes from the model's JSON Schema: each parameter is a row.
    section = body.split(f'id="model-{video.llmid}"', 1)[1].split("</details>", 1)[0]
    for spec in video.params:
        assert f'<td class="mono">{spec.name}</td>' in section
    only_chat = http.get("/models?kind=chat").text
    assert f'id="model-{chat.llmid}"' in only_chat
    assert f'id="model-{video.llmid}"' not in only_chat


def test_model_descriptions_render_escaped(site: Stack) -> None:
    import dataclasses

    from llmage.console.web.plaza import plaza_models

    models = plaza_models(site.platform.catalog, "CNY", "http://h")
    evil = dataclasses.replace(
        models[0],
        description="<script>alert(1)</script>",
        display_name="<img src=x onerror=alert(2)>",
    )
    html = pages._env.get_template("plaza.html").render(
        user=None,
        lang="zh",
        other_lang="en",
        t=lambda k: k,
        catalogue={},
        static="/static",
        path="/models",
        models=[evil],
        kind=None,
    )
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html


def flat_routes(routes: list[Any]) -> list[Any]:
    """The app's routes with included routers expanded (FastAPI may wrap them)."""
    out = []
    for r in routes:
        inner = getattr(r, "original_router", None)
        out.extend(flat_routes(inner.routes) if inner is not None else [r])
    return out


def admin_routes(site: Stack) -> list[tuple[str, str]]:
    """Every admin page and admin API route of the running app, walked from its route table (a
    new route is covered without touching this test)."""
    out = []
    for r in flat_routes(site.server.app.routes):
        path = getattr(r, "path", "")
        if path == "/admin" or path.startswith(("/admin/", "/api/admin/")):
            for method in sorted(getattr(r, "methods", None) or {"GET"}):
                if method != "HEAD":
                    out.append((method, re.sub(r"\{[^}]+\}", "1", path)))
    return out


def test_every_admin_route_refuses_a_non_admin(http: httpx.Client, site: Stack) -> None:
    routes = admin_routes(site)
    assert ("GET", "/admin") in routes and ("GET", "/api/admin/users") in routes
    assert any(m == "POST" for m, _ in routes) and any(m == "PATCH" for m, _ in routes)
    # The admin sections and their APIs are found by the walk, not listed by hand here.
    for section in ("channels", "models", "tasks"):
        assert ("GET", f"/admin/{section}") in routes
        assert ("GET", f"/api/admin/{section}") in routes
    assert ("GET", "/admin/tasks/1") in routes and ("POST", "/api/admin/tasks/1/cancel") in routes
    assert ("PATCH", "/api/admin/models/1") in routes
    user = session_for(site, "notadmin")
    for method, path in routes:
        anonymous = http.request(method, path, headers={"Origin": site.url}, json={})
        assert anonymous.status_code in (401, 303), (method, path, anonymous.status_code)
        r = http.request(
            method,
            path,
            cookies=user,
            headers={"X-CSRF-Token": user["llmage_csrf"], "Origin": site.url},
            json={},
        )
        assert r.status_code == 403, (method, path, r.status_code, r.text[:200])
        if not path.startswith("/api/"):
            assert "<table" not in r.text and r.headers["content-type"].startswith("text/html")
        else:
            assert r.json()["error"]["code"] == "forbidden"
