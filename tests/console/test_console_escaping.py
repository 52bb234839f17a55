"""Markup in user data renders as text on every server-rendered page that shows it: a user
name, a model description (from an admin's catalog file), an upstream error text in the
playground's task fragment and the admin's task inspect page; each page carries the CSP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from consolehelp import Browser, logged_in
from test_admin_tasks import BROKEN_IMAGE, UPSTREAM_TEXT, add_task_channels, submit

from conftest import Account, Stack, running_stack
from llmage import catalog as catalog_pkg
from llmage.console.web.pages import CONTENT_SECURITY_POLICY
from llmage.services.accounts import AccountService

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"
DESCRIBED = "o5vfXYD5BURJWRTWpopE5"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("escaping")
    data = json.loads((Path(catalog_pkg.__file__).parent / "models.json").read_text())
    for m in data["models"]:
        if m["llmid"] == DESCRIBED:
            m["description"] = UPSTREAM_TEXT
    path = tmp / "catalog.json"
    path.write_text(json.dumps(data))
    with running_stack("sqlite", tmp, catalog_file=path) as s:
        add_task_channels(s)
        yield s


def assert_escaped(r: httpx.Response) -> None:
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert UPSTREAM_TEXT not in r.text and "<img src=x" not in r.text
    assert ESCAPED in r.text


def test_a_user_name_with_markup(site: Stack) -> None:
    async def work() -> None:
        await AccountService(site.platform).create_user(UPSTREAM_TEXT, "password-123")

    site.admin.call(work())
    b = Browser(site)
    b.login(UPSTREAM_TEXT)
    for path in ("/keys", "/finance", "/playground", "/models"):
        r = b.get(path)
        assert r.status_code == 200, path
        assert_escaped(r)


def test_a_model_description_with_markup(site: Stack) -> None:
    b, _, _ = logged_in(site)
    assert_escaped(b.get("/models"))
    assert_escaped(b.get(f"/playground/form?llmid={DESCRIBED}"))


def test_an_upstream_error_with_markup(site: Stack) -> None:
    user_browser, uid, name = logged_in(site)
    new = site.admin.call(AccountService(site.platform).create_key(uid, name="k"))
    site.credit_micros(uid, 10_000_000)
    task = submit(site, Account(uid, new.key, name), BROKEN_IMAGE)
    deadline = time.monotonic() + 60
    while True:
        r = user_browser.get(f"/playground/task/{task}")
        if r.status_code == 286 or time.monotonic() > deadline:
            break
        assert r.status_code == 200, r.text
        time.sleep(0.05)
    assert r.status_code == 286  # finished: htmx stops polling
    assert "FAILED" in r.text
    assert_escaped(r)
    admin, _, _ = logged_in(site, role="admin")
    assert_escaped(admin.get(f"/admin/tasks/{task}"))
    # Somebody else's task is not there for them.
    other, _, _ = logged_in(site)
    assert other.get(f"/playground/task/{task}").status_code == 404
    assert Browser(site).get(f"/playground/task/{task}").status_code == 401
