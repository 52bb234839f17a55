"""`/api/admin/tasks` over the real server (SQLite and PostgreSQL): every user's tasks with
filters, one task in full (params, files, error, charge, channel), and cancel through the
owner's cancel path: the hold is released exactly once, whoever asks and however often."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from consolehelp import Browser, error, logged_in

from conftest import Account, Stack, running_stack
from support.backends import BACKENDS

SLOW_VIDEO = "o5vfXYD5BURJWRTWpopE5"  # happyhorse-1.0-t2v on a channel whose jobs never end
BROKEN_IMAGE = "56xed0ECerNOuvtEXyiKF"  # qwen-image on a channel whose jobs fail at once
UPSTREAM_TEXT = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def add_task_channels(stack: Stack) -> None:
    p = stack.platform
    stack.admin.call(
        p.channels.add(
            name="sim-slow", provider="sim", platform="sim", base_url="", credential_enc=None,
            models=["happyhorse-1.0-t2v"], options={"latency_ms": 3_600_000},
        )
    )  # fmt: skip
    stack.admin.call(
        p.channels.add(
            name="sim-broken", provider="sim", platform="sim", base_url="", credential_enc=None,
            models=["qwen-image"],
            options={"latency_ms": 0, "failure_rate": 1, "failure_message": UPSTREAM_TEXT},
        )
    )  # fmt: skip


@pytest.fixture(scope="module", params=BACKENDS)
def tstack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    tmp: Path = tmp_path_factory.mktemp(f"admintasks-{request.param}")
    with running_stack(request.param, tmp) as s:
        add_task_channels(s)
        yield s


@pytest.fixture(scope="module")
def admin(tstack: Stack) -> Iterator[Browser]:
    b, _, _ = logged_in(tstack, role="admin")
    yield b
    b.close()


def submit(stack: Stack, acc: Account, llmid: str, **params: Any) -> str:
    r = httpx.post(
        f"{stack.url}/llmage/video",
        json={"llmid": llmid, "prompt": "a cat", **params},
        headers=stack.headers(acc),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    task_id: str = r.json()["taskid"]
    return task_id


def wait_status(b: Browser, task_id: str, want: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = b.get(f"/api/admin/tasks/{task_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["status"] == want or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_lists_filters_inspects_and_cancels(tstack: Stack, admin: Browser) -> None:
    alice, bob = tstack.account(), tstack.account()
    running = submit(tstack, alice, SLOW_VIDEO, duration=5, resolution="720p")
    failed = submit(tstack, bob, BROKEN_IMAGE)
    assert wait_status(admin, failed, "FAILED")["status"] == "FAILED"

    def ids(query: str) -> list[str]:
        r = admin.get(f"/api/admin/tasks?{query}")
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["items"]]

    assert {running, failed} <= set(ids(""))
    assert ids(f"user={alice.username}") == [running]
    assert ids(f"user={bob.user_id}") == [failed]
    assert failed in ids("status=FAILED") and running not in ids("status=FAILED")
    assert running in ids("status=PENDING&status=RUNNING&status=SUBMITTING&status=CREATED")
    assert running in ids("model=happyhorse-1.0-t2v") and failed not in ids(
        "model=happyhorse-1.0-t2v"
    )
    assert failed in ids(f"model={BROKEN_IMAGE}")
    # The server's day may differ from UTC's: only wide ranges are asserted.
    assert running in ids("from=2000-01-01&to=2100-01-01") and not ids("to=2000-01-01")
    page = admin.get("/api/admin/tasks?page_size=1").json()
    assert len(page["items"]) == 1 and page["has_more"] is True

    shown = admin.get(f"/api/admin/tasks/{failed}").json()
    assert shown["username"] == bob.username and shown["channel"] == "sim-broken"
    assert shown["error_message"] == UPSTREAM_TEXT  # JSON carries it as text; pages escape it
    assert shown["charged"]["micros"] == 0 and shown["params"]["prompt"] == "a cat"

    before = tstack.balance(alice.user_id)
    assert before[1] > 0  # the open task holds money
    r = admin.post(f"/api/admin/tasks/{running}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "CANCELLED"
    assert r.json()["error_message"] == "Cancelled by an administrator"
    assert tstack.balance(alice.user_id) == (before[0], 0)  # released, nothing charged
    # Again, by the admin or by the owner: nothing moves a second time.
    assert admin.post(f"/api/admin/tasks/{running}/cancel").json()["status"] == "CANCELLED"
    r = httpx.post(
        f"{tstack.url}/llmage/tasks/cancel?taskid={running}",
        headers=tstack.headers(alice),
        timeout=20,
    )
    assert r.status_code == 200, r.text
    assert tstack.balance(alice.user_id) == (before[0], 0)
    assert tstack.reconcile() == []


def test_bad_filters_and_unknown_tasks(admin: Browser) -> None:
    r = admin.get("/api/admin/tasks?status=DONE")
    assert r.status_code == 400 and error(r)["param"].startswith("status")
    r = admin.get("/api/admin/tasks?from=yesterday")
    assert r.status_code == 400 and error(r)["param"] == "from"
    r = admin.get("/api/admin/tasks?page_size=0")
    assert r.status_code == 400 and error(r)["param"] == "page_size"
    assert admin.get("/api/admin/tasks/nosuchtask").status_code == 404
    assert admin.post("/api/admin/tasks/nosuchtask/cancel").status_code == 404


def test_cancel_needs_the_csrf_token(tstack: Stack, admin: Browser) -> None:
    acc = tstack.account()
    task = submit(tstack, acc, SLOW_VIDEO, duration=5, resolution="720p")
    r = admin.post(f"/api/admin/tasks/{task}/cancel", csrf=False)
    assert r.status_code == 403 and error(r)["code"] == "csrf_failed"
    assert admin.get(f"/api/admin/tasks/{task}").json()["status"] != "CANCELLED"


def test_admin_pages_render_and_escape_upstream_text(tstack: Stack, admin: Browser) -> None:
    """The section pages render for an admin with the CSP; one task's inspect page shows an
    upstream error text full of markup as text."""
    from llmage.console.web.pages import CONTENT_SECURITY_POLICY

    for path in ("/admin/channels", "/admin/models", "/admin/tasks", "/admin?lang=en"):
        r = admin.get(path)
        assert r.status_code == 200, (path, r.status_code)
        assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert 'href="/admin/models"' in r.text
    acc = tstack.account()
    failed = submit(tstack, acc, BROKEN_IMAGE)
    assert wait_status(admin, failed, "FAILED")["status"] == "FAILED"
    r = admin.get(f"/admin/tasks/{failed}")
    assert r.status_code == 200 and r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert UPSTREAM_TEXT not in r.text and "<img src=x" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in r.text
    assert admin.get("/admin/tasks/nosuchtask").status_code == 404
