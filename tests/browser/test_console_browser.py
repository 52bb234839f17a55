"""The console in a real browser: sign-up -> log-out -> log-in -> create a key (it works on the
API at once) -> top up through the fake Alipay notify -> the balance updates on the page ->
finance shows it; SMS log-in. Every wait is on a page condition (`expect`), never a sleep.

`LLMAGE_CONSOLE_SCREENSHOTS=1` also saves the pages it passes through to docs/console/."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(
        "Debian's chromium is not installed: LLMAGE_INSTALL_BROWSER=1 scripts/install.sh",
        allow_module_level=True,
    )
pytest.importorskip("pytest_playwright_asyncio", reason="pip install -e '.[dev,browser]'")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "payments"))
from payhelp import PayEnv, pay_env  # noqa: E402
from playwright.async_api import Page, expect  # noqa: E402

from llmage.auth.passwords import hash_password  # noqa: E402


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    # Playwright's own browser download does not work offline: use the system's chromium.
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--disable-dev-shm-usage"],
    }


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PayEnv]:
    yield from pay_env("sqlite", tmp_path_factory)


DOCS = Path(__file__).resolve().parents[2] / "docs" / "console"


async def shot(page: Page, name: str) -> None:
    if os.environ.get("LLMAGE_CONSOLE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(DOCS / f"{name}.png"), full_page=True)


async def test_sign_up_key_top_up_and_finance(env: PayEnv, page: Page) -> None:
    base = env.url
    await page.goto(base + "/")
    await expect(page.get_by_role("link", name="模型广场").first).to_be_visible()
    await shot(page, "landing")

    # Sign up: lands on the keys page, logged in.
    username = "b" + secrets.token_hex(5)
    await page.goto(base + "/signup")
    await page.fill("#signup input[name=username]", username)
    await page.fill("#signup input[name=password]", "password-123")
    await page.click("#signup button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/keys$"))
    await expect(page.locator("#who")).to_have_text(username)

    # Log out, then log in with the password.
    await page.click("#logout")
    await expect(page).to_have_url(base + "/")
    await page.goto(base + "/login")
    await shot(page, "login")
    await page.fill("#login-password input[name=username]", username)
    await page.fill("#login-password input[name=password]", "password-123")
    await page.click("#login-password button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/keys$"))

    # Create a key with markup in its name: shown once, listed as text, usable at once.
    await page.fill("#key-create input[name=name]", "<b>ci</b>")
    await page.click("#key-create button[type=submit]")
    await expect(page.locator("#key-value")).to_have_value(re.compile(r"^sk-"))
    key = await page.locator("#key-value").input_value()
    await page.click("#key-copy")
    await expect(page.locator("#key-copied")).to_be_visible()
    row = page.locator("#keys-table tbody tr").filter(has_text="<b>ci</b>")
    await expect(row).to_have_count(1)
    await expect(page.locator("#keys-table b")).to_have_count(0)
    await shot(page, "keys")
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        r = await http.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text

    # Top up 12.34 by Alipay page pay; the fake gateway confirms with a signed notify.
    await page.goto(base + "/topup")
    await expect(page.locator("#balance")).to_have_text(re.compile(r"^0\.0+ CNY$"))
    await page.fill("#topup input[name=amount]", "12.34")
    await page.click("#topup button[type=submit]")
    await expect(page.locator("#order-status")).to_have_text("pending")
    href = await page.locator("#order-pay-link").get_attribute("href")
    assert href and href.startswith(env.alipay.url + "?")
    await shot(page, "topup")
    no = await page.locator("#order-no").inner_text()
    # The cashier opens in its own tab (the console tab keeps watching the order).
    async with page.context.expect_page() as opened:
        await page.click("#order-pay-link")
    cashier = await opened.value
    await cashier.wait_for_load_state()
    assert no in env.alipay.trades
    await cashier.close()
    env.alipay.pay(no)
    answer = await asyncio.to_thread(env.admin.call, env.alipay.notify(no))
    assert answer == (200, "success")
    await expect(page.locator("#order-status")).to_have_text("paid", timeout=20_000)
    await expect(page.locator("#balance")).to_have_text(re.compile(r"^12\.34"))

    # Finance: balance, the top-up in the ledger.
    await page.goto(base + "/finance")
    await expect(page.locator("#balance")).to_have_text(re.compile(r"^12\.34"))
    ledger = page.locator("#ledger-table tbody tr").filter(has_text="topup")
    await expect(ledger).to_have_count(1)
    await expect(ledger).to_contain_text("12.34")
    await shot(page, "finance")

    # A key revoked on the page stops working.
    await page.goto(base + "/keys")
    page.once("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await row.locator("button.revoke").click()
    await expect(row.locator("td").nth(2)).to_have_text("revoked")
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        r = await http.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 401, r.text


async def test_sms_login(env: PayEnv, page: Page) -> None:
    phone = "138" + str(secrets.randbelow(10**8)).zfill(8)
    username = "s" + secrets.token_hex(5)
    env.admin.call(
        env.platform.accounts.create_user(username, hash_password("password-123"), phone=phone)
    )
    sender = env.server.app.state.platform.sms
    await page.goto(env.url + "/login?lang=en")
    await expect(page.locator("#login-sms h2")).to_have_text("SMS code")
    await page.fill("#login-sms input[name=phone]", phone)
    await page.click("#send-code")
    await expect(page.locator("#code-note")).to_have_text("Code sent")
    codes = [c for p, c in sender.sent if p.endswith(phone[-8:])]
    assert codes, sender.sent
    await page.fill("#login-sms input[name=code]", codes[-1])
    await page.click("#login-sms button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/keys$"))
    await expect(page.locator("#who")).to_have_text(username)


async def test_admin_credits_a_user_and_creates_codes(env: PayEnv, page: Page) -> None:
    admin = env.user(role="admin")
    target = env.user("1.00")
    await page.context.add_cookies(
        [
            {"name": "llmage_session", "value": admin.session, "url": env.url},
            {"name": "llmage_csrf", "value": admin.csrf, "url": env.url},
        ]
    )
    await page.goto(env.url + "/admin")
    row = page.locator(f'#users-table tbody tr[data-user-id="{target.user_id}"]')
    await expect(row).to_contain_text(target.username)
    await page.fill("#adjust input[name=user_id]", str(target.user_id))
    await page.fill("#adjust input[name=amount]", "5.50")
    await page.fill("#adjust input[name=reason]", "<i>goodwill</i>")
    await page.click("#adjust button[value=credit]")
    await expect(row.locator("td").nth(5)).to_have_text(re.compile(r"^6\.50"))
    assert env.balance(target.user_id)[0] == 6_500_000
    await row.locator("button.toggle").click()
    await expect(row.locator("td").nth(3)).to_have_text("✓")
    await page.fill("#codes-create input[name=count]", "2")
    await page.click("#codes-create button[type=submit]")
    await expect(page.locator("#codes-new")).to_be_visible()
    await expect(page.locator("#codes-table tbody tr")).to_have_count(2)
    await shot(page, "admin")

    await page.goto(env.url + "/models")
    await page.locator("details.model summary").first.click()
    await expect(page.locator("details.model table.params").first).to_be_visible()
    await shot(page, "models")


async def test_playground_chat_streams(env: PayEnv, page: Page) -> None:
    user = env.user("5")
    await page.context.add_cookies(
        [
            {"name": "llmage_session", "value": user.session, "url": env.url},
            {"name": "llmage_csrf", "value": user.csrf, "url": env.url},
        ]
    )
    await page.goto(env.url + "/playground")
    # A wrong key: the API's own message shows, as text.
    await page.fill("#play-key", "sk-wrong")
    await page.select_option("#play-model", "qwen3-max")
    await page.fill("#play-prompt", "hello")
    await page.click("#chat button[type=submit]")
    await expect(page.locator("#error")).to_be_visible()
    await page.fill("#play-key", user.key)
    await page.click("#chat button[type=submit]")
    answer = page.locator("#transcript p.answer.done")
    await expect(answer).to_have_count(1, timeout=30_000)
    assert (await answer.inner_text()).strip()
    await expect(page.locator("#error")).to_be_hidden()
    await shot(page, "playground")


@pytest.fixture(scope="module")
def fast_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PayEnv]:
    # Tasks finish quickly here (the other env keeps them running on purpose).
    yield from pay_env("sqlite", tmp_path_factory, sim_task_latency_ms=50.0)


async def test_playground_video_estimate_submit_and_play(fast_env: PayEnv, page: Page) -> None:
    env = fast_env
    catalog = env.platform.catalog
    entry = next(
        e
        for e in catalog.entries()
        if e.kind.value == "t2v" and not any(p.required and p.is_file for p in e.params)
    )
    user = env.user("100")
    await page.context.add_cookies(
        [
            {"name": "llmage_session", "value": user.session, "url": env.url},
            {"name": "llmage_csrf", "value": user.csrf, "url": env.url},
        ]
    )
    await page.goto(env.url + "/playground")
    await page.fill("#play-key", user.key)
    await page.select_option("#media-model", entry.llmid)
    # The form for this model arrives by htmx, one field per parameter of its schema.
    prompt = page.locator("#media-fields textarea[name=prompt]")
    await expect(prompt).to_be_visible()
    for spec in entry.params:
        await expect(page.locator(f'#media-fields [name="{spec.name}"]')).to_have_count(1)
    await prompt.fill("a cat running on grass")
    await page.click("#media-estimate")
    await expect(page.locator("#media-price")).to_have_text(re.compile(r"^\d+\.\d+ CNY$"))
    await page.click("#media button[type=submit]")
    await expect(page.locator("#task-status")).to_have_text("SUCCEEDED", timeout=60_000)
    await expect(page.locator("#task-video")).to_be_visible()
    await page.wait_for_function(
        "document.getElementById('task-video').readyState >= 2", timeout=30_000
    )
    await shot(page, "playground-video")


async def test_playground_without_a_key_runs_as_the_user(env: PayEnv, page: Page) -> None:
    user = env.user("100")
    await page.context.add_cookies(
        [
            {"name": "llmage_session", "value": user.session, "url": env.url},
            {"name": "llmage_csrf", "value": user.csrf, "url": env.url},
        ]
    )
    await page.goto(env.url + "/playground")
    await page.select_option("#play-model", "qwen3-max")
    await page.fill("#play-prompt", "hello")
    await page.click("#chat button[type=submit]")
    answer = page.locator("#transcript p.answer.done")
    await expect(answer).to_have_count(1, timeout=30_000)
    assert (await answer.inner_text()).strip()
    await expect(page.locator("#error")).to_be_hidden()


async def test_admin_channels_models_and_tasks(env: PayEnv, page: Page) -> None:
    """The admin path: add a channel, test it, disable it; reprice a model and see the price in
    the plaza; filter every user's tasks and cancel one (its hold released)."""
    page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
    admin = env.user("0", role="admin")
    await page.context.add_cookies(
        [
            {"name": "llmage_session", "value": admin.session, "url": env.url},
            {"name": "llmage_csrf", "value": admin.csrf, "url": env.url},
        ]
    )
    # Channels: add one (the sim provider needs no credential), test it, disable it.
    name = "br-" + secrets.token_hex(3)
    await page.goto(env.url + "/admin/channels?lang=en")
    await expect(page.locator("#channel-provider option[value=sim]")).to_have_count(1)
    await page.select_option("#channel-provider", "openai_compat")
    await expect(page.locator("#cred-key")).to_be_visible()
    await page.select_option("#channel-provider", "sim")
    await expect(page.locator("#cred-key")).to_be_hidden()
    await page.fill("#channel-add input[name=name]", name)
    await page.fill("#channel-add input[name=models]", "qwen3-max, qwen-plus")
    await page.fill("#channel-add input[name=priority]", "-3")
    await page.click("#channel-add button[type=submit]")
    row = page.locator(f'#channels-table tr[data-channel="{name}"]')
    await expect(row).to_have_count(1)
    await expect(row.locator("td.health")).to_have_text("not tested")
    await row.locator("button.test").click()
    await expect(row.locator("td.health")).to_have_text(re.compile(r"^OK · \d+ ms"))
    await row.locator("button.toggle").click()
    await expect(row.locator("td").nth(6)).to_have_text("✗")
    await shot(page, "admin-channels")

    # Models: a new price for one resolution of a video model, shown in the plaza.
    llmid = "o5vfXYD5BURJWRTWpopE5"  # happyhorse-1.0-t2v
    await page.goto(env.url + "/admin/models?lang=en")
    model_row = page.locator(f'#models-table tr[data-llmid="{llmid}"]')
    await model_row.locator("button.price").click()
    await page.fill('#price-fields input[name="rates.720p"]', "0.777")
    await page.click("#price-form button[type=submit]")
    await expect(model_row).to_contain_text("0.777000 CNY / second")
    await expect(model_row).to_contain_text("repriced")
    await shot(page, "admin-models")
    await page.goto(env.url + "/models?lang=en")
    await expect(page.get_by_text("720p (resolution): 0.777000 CNY / second")).to_have_count(1)

    # Tasks: one of another user's tasks, found by filters, cancelled; its hold goes back.
    user = env.user("100")
    async with httpx.AsyncClient(base_url=env.url, timeout=30) as http:
        r = await http.post(
            "/llmage/video",
            json={"llmid": llmid, "prompt": "a cat", "duration": 5, "resolution": "480p"},
            headers={"Authorization": f"Bearer {user.key}"},
        )
    assert r.status_code == 200, r.text
    task = r.json()["taskid"]
    assert env.balance(user.user_id)[1] > 0
    await page.goto(env.url + "/admin/tasks?lang=en")
    await page.fill("#tasks-filter input[name=user]", user.username)
    await page.fill("#tasks-filter input[name=model]", llmid)
    await page.click("#tasks-filter button[type=submit]")
    task_row = page.locator(f'#tasks-table tr[data-task="{task}"]')
    await expect(page.locator("#tasks-table tbody tr")).to_have_count(1)
    await expect(task_row).to_have_count(1)
    await shot(page, "admin-tasks")
    await task_row.locator("button.cancel").click()
    await expect(task_row).to_contain_text("CANCELLED")
    assert env.balance(user.user_id) == (100_000_000, 0)
    await task_row.locator("a").click()
    await expect(page.locator("#task-status")).to_have_text("CANCELLED")
    await expect(page.locator("#task-cancel")).to_have_count(0)
    await shot(page, "admin-task")


XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"


async def test_markup_in_user_data_stays_text_in_the_browser(env: PayEnv, page: Page) -> None:
    """A user name, a key name and an upstream error text full of markup, on the pages whose
    script writes them (keys, finance usage, admin users and tasks) and those rendered on the
    server (task inspect, playground fragment): shown as text, no element made, no alert."""
    from llmage.services.accounts import AccountService

    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
    p = env.platform

    async def setup() -> tuple[int, str, str, str]:
        await p.channels.add(
            name="sim-broken-" + secrets.token_hex(3), provider="sim", platform="sim",
            base_url="", credential_enc=None, models=["qwen-image"], priority=50,
            options={"latency_ms": 0, "failure_rate": 1, "failure_message": XSS},
        )  # fmt: skip
        uid = await p.accounts.create_user(
            XSS[:40] + secrets.token_hex(3), hash_password("password-123"), role="admin"
        )
        await p.ledger.credit(uid, 100_000_000, f"test:xss{uid}")
        key = await AccountService(p).create_key(uid, name=XSS)
        opened = await p.sessions.open(uid)
        return uid, key.key, opened.token, opened.csrf

    _uid, key, session, csrf = env.admin.call(setup())
    async with httpx.AsyncClient(base_url=env.url, timeout=30) as http:
        auth = {"Authorization": f"Bearer {key}"}
        r = await http.post(
            "/llmage/video", json={"llmid": "56xed0ECerNOuvtEXyiKF", "prompt": "x"}, headers=auth
        )
        assert r.status_code == 200, r.text
        task = r.json()["taskid"]
        for _ in range(600):
            view = (await http.get(f"/llmage/tasks?taskid={task}", headers=auth)).json()
            if view["status"] == "FAILED":
                break
            await asyncio.sleep(0.05)
        assert view["status"] == "FAILED" and view["error"]["message"] == XSS
    await page.context.add_cookies(
        [
            {"name": "llmage_session", "value": session, "url": env.url},
            {"name": "llmage_csrf", "value": csrf, "url": env.url},
        ]
    )
    where = {
        "/keys": "#keys-table",
        "/finance": "#usage-table",
        "/admin": "#users-table",
        "/admin/tasks": "#tasks-table",
        f"/admin/tasks/{task}": "#task-detail",
        f"/playground/task/{task}": "body",
    }
    for path, box in where.items():
        await page.goto(env.url + path)
        await expect(page.locator(box).get_by_text("alert(1)").first).to_be_visible()
        assert await page.locator("img[src=x], main script:not([src])").count() == 0, path
        assert XSS[:20] in (await page.locator(box).inner_text()), path
    assert dialogs == []
