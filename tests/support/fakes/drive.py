"""Wire a fake provider into the `stack` fixture and drive tasks through the PUBLIC API.

    channel_id = wire_channel(stack, fake, provider="openai_compat", models=["happyhorse-1.0-t2v"],
                              credentials=ApiKey(fake.api_key), model_map={...})
    acc = account(stack)
    done = drive_native(stack, acc, {"llmid": ..., "prompt": "a cat", "duration": 4})
    video = rehosted(stack, done["video"], fake)      # fake's URLs expired first: our copy works

`drive_native` submits to POST /llmage/video and polls GET /llmage/tasks (seed 000);
`drive_openai_video` does the same through POST /v1/videos + GET /v1/videos/{id} (OpenAI), and
`drive_openai_image` through POST /v1/images/generations|edits.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx

from conftest import Account, Stack
from llmage.auth.passwords import hash_password
from llmage.domain.credentials import Credentials, dump_secret
from llmage.domain.money import parse_amount
from llmage.services.accounts import AccountService
from support.fakes.server import FakeUpstream

TIMEOUT = httpx.Timeout(30.0)
_PASSWORD_HASH = hash_password("password-123")
FAST = {"poll_interval_ms": 50}  # channel options: poll the fake quickly


def wire_channel(
    stack: Stack,
    fake: FakeUpstream,
    *,
    provider: str,
    models: list[str],
    credentials: Credentials | None,
    name: str | None = None,
    model_map: dict[str, str] | None = None,
    options: dict[str, Any] | None = None,
    priority: int = 100,
    platform: str | None = None,
    base_url: str | None = None,
) -> int:
    """A channel of `provider` pointing at `fake`, visible to the running server."""
    platform_obj = stack.platform
    channel_id = stack.admin.call(
        platform_obj.channels.add(
            name=name or f"{provider}-{secrets.token_hex(3)}",
            provider=provider,
            platform=platform or provider,
            base_url=base_url if base_url is not None else fake.url,
            credential_enc=platform_obj.box.seal(dump_secret(credentials)) if credentials else None,
            credential_type=credentials.type if credentials else None,
            models=models,
            model_map=model_map or {},
            options={**FAST, **(options or {})},
            priority=priority,
        )
    )
    # Result URLs point at the fake on 127.0.0.1: let the server's guarded fetcher copy them
    # (an operator allow-list entry, exactly as `LLMAGE_FETCH_ALLOW_HOSTS` would add).
    fetcher = stack.server.app.state.platform.fetcher
    fetcher.allow_hosts = fetcher.allow_hosts | {fake.host_port}
    time.sleep(stack.settings.channel_cache_ttl + 0.1)  # the server's channel cache catches up
    return int(channel_id)


def account(stack: Stack, balance: str = "100") -> Account:
    username = "f" + secrets.token_hex(6)

    async def work() -> Account:
        uid = await stack.platform.accounts.create_user(username, _PASSWORD_HASH)
        if micros := parse_amount(balance):
            await stack.platform.ledger.credit(uid, micros, f"test:{username}")
        new = await AccountService(stack.platform).create_key(uid, name="test")
        return Account(uid, new.key, username)

    return stack.admin.call(work())


def _auth(acc: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {acc.key}"}


def _until(fetch: Any, done: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view: dict[str, Any] = fetch()
        if done(view):
            return view
        assert time.monotonic() < deadline, f"still not finished: {view}"
        time.sleep(0.05)


def drive_native(
    stack: Stack,
    acc: Account,
    body: dict[str, Any],
    *,
    files: dict[str, tuple[str, bytes, str]] | None = None,
    timeout: float = 30,
) -> dict[str, Any]:
    """Submit through POST /llmage/video (JSON, or multipart when `files`), poll to the end."""
    if files:
        form = {k: str(v) for k, v in body.items()}
        r = httpx.post(
            stack.url + "/llmage/video", data=form, files=files, headers=_auth(acc), timeout=TIMEOUT
        )
    else:
        r = httpx.post(stack.url + "/llmage/video", json=body, headers=_auth(acc), timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    taskid = r.json()["taskid"]

    def fetch() -> dict[str, Any]:
        got = httpx.get(
            stack.url + "/llmage/tasks",
            params={"taskid": taskid},
            headers=_auth(acc),
            timeout=TIMEOUT,
        )
        assert got.status_code == 200, got.text
        return got.json()  # type: ignore[no-any-return]

    return _until(fetch, lambda v: v["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"), timeout)


def drive_openai_video(
    stack: Stack,
    acc: Account,
    fields: dict[str, str],
    *,
    input_reference: tuple[str, bytes, str] | None = None,
    timeout: float = 30,
) -> dict[str, Any]:
    """POST /v1/videos (multipart, as the SDK sends it), then GET /v1/videos/{id} to the end."""
    files = {"input_reference": input_reference} if input_reference else None
    r = httpx.post(
        stack.url + "/v1/videos", data=fields, files=files, headers=_auth(acc), timeout=TIMEOUT
    )
    assert r.status_code == 200, r.text
    video_id = r.json()["id"]

    def fetch() -> dict[str, Any]:
        got = httpx.get(f"{stack.url}/v1/videos/{video_id}", headers=_auth(acc), timeout=TIMEOUT)
        assert got.status_code == 200, got.text
        return got.json()  # type: ignore[no-any-return]

    return _until(fetch, lambda v: v["status"] in ("completed", "failed"), timeout)


def video_content(stack: Stack, acc: Account, video_id: str, variant: str = "video") -> bytes:
    r = httpx.get(
        f"{stack.url}/v1/videos/{video_id}/content",
        params={"variant": variant},
        headers=_auth(acc),
        timeout=TIMEOUT,
    )
    assert r.status_code == 200, r.text
    return r.content


def rehosted(url: str, fake: FakeUpstream) -> bytes:
    """Our copy of a result, fetched AFTER the fake's own URLs expired (proves re-hosting)."""
    fake.expire_files()
    r = httpx.get(url, timeout=TIMEOUT)
    assert r.status_code == 200, (url, r.status_code)
    return r.content
