"""Helpers for the OpenAI videos/images suites (imported by name: this folder is on sys.path).

`media_channels(stack)` adds three sim channels serving the catalog's video and image models:
`simmedia` (platform `sim`, fast, preferred on /v1), `slowsim` (jobs run a minute: open tasks for
cancel/delete tests) and `failsim` (every job fails)."""

from __future__ import annotations

import io
import secrets
import time
from typing import Any

import httpx
import openai
from PIL import Image

from conftest import Account, Stack
from llmage.auth.passwords import hash_password
from llmage.domain.money import parse_amount
from llmage.services.accounts import AccountService

TIMEOUT = httpx.Timeout(30.0)
VIDEO_MODELS = [
    "happyhorse-1.0-t2v",
    "happyhorse-1.0-i2v",
    "happyhorse-1.0-r2v",
    "wan2.6-t2v",
    "doubao-seedance-2-0-260128",
]
IMAGE_MODELS = ["qwen-image", "doubao-seedream-4-0-250828"]
MEDIA_MODELS = VIDEO_MODELS + IMAGE_MODELS
HAPPYHORSE_T2V = "o5vfXYD5BURJWRTWpopE5"
HAPPYHORSE_I2V = "7y7kfYM0Xasizyi37WvAZ"
HAPPYHORSE_R2V = "6o9n_7u2K927hNlD8_72f"
SEEDREAM_I2I = "t0vqrNTIitfWZBC7ERqO4"
_PASSWORD_HASH = hash_password("password-123")


def media_channels(stack: Stack) -> None:
    fast = {"latency_ms": 300, "poll_interval_ms": 100}
    for name, platform, options, priority in (
        ("simmedia", "sim", fast, 10),
        ("slowsim", "slowsim", {"latency_ms": 60_000, "poll_interval_ms": 100}, 0),
        ("failsim", "failsim", {**fast, "failure_rate": 1.0}, 0),
    ):
        stack.admin.call(
            stack.platform.channels.add(
                name=name, provider="sim", platform=platform, base_url="", credential_enc=None,
                models=MEDIA_MODELS, options=options, priority=priority,
            )
        )  # fmt: skip
    time.sleep(stack.settings.channel_cache_ttl + 0.1)  # the server's channel cache catches up


def account(stack: Stack, balance: str = "100") -> Account:
    username = "m" + secrets.token_hex(6)

    async def work() -> Account:
        uid = await stack.platform.accounts.create_user(username, _PASSWORD_HASH)
        if micros := parse_amount(balance):
            await stack.platform.ledger.credit(uid, micros, f"test:{username}")
        new = await AccountService(stack.platform).create_key(uid, name="test")
        return Account(uid, new.key, username)

    return stack.admin.call(work())


def client(stack: Stack, key: str, **kwargs: Any) -> openai.OpenAI:
    kwargs.setdefault("timeout", 60.0)
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("base_url", stack.url + "/v1")
    return openai.OpenAI(api_key=key, **kwargs)


def png_bytes(width: int = 64, height: int = 48, color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def is_png(data: bytes) -> bool:
    return data.startswith(b"\x89PNG\r\n\x1a\n")


def is_mp4(data: bytes) -> bool:
    return data[4:8] == b"ftyp"


def is_jpeg(data: bytes) -> bool:
    return data.startswith(b"\xff\xd8\xff")


def http(stack: Stack, method: str, path: str, key: str | None, **kwargs: Any) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}) or {})
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.request(method, stack.url + path, headers=headers, timeout=TIMEOUT, **kwargs)


def poll(
    stack: Stack, path: str, key: str, *, timeout: float = 30.0, done: tuple[str, ...] = ()
) -> dict[str, Any]:
    """GET `path` until its status is terminal (completed/failed, or one of `done`)."""
    deadline = time.monotonic() + timeout
    while True:
        resp = http(stack, "GET", path, key)
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        if body["status"] in ("completed", "failed", *done) or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def assert_openai_error(
    resp: httpx.Response, status: int, param: str | None = None
) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err: dict[str, Any] = resp.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}
    if param is not None:
        assert err["param"] == param, err
    return err
