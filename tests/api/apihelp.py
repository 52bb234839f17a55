"""Small helpers shared by the API suites (imported by name: tests/api is on sys.path)."""

from __future__ import annotations

import json
import secrets
import subprocess
from typing import Any

import httpx

from conftest import Account, Stack
from llmage.auth.passwords import hash_password
from llmage.domain.money import parse_amount
from llmage.services.accounts import AccountService

TIMEOUT = httpx.Timeout(20.0)

# One Argon2 hash for every test user: hashing per user would cost ~0.1 s a test.
_PASSWORD_HASH = hash_password("password-123")


def account(stack: Stack, balance: str = "10", **key_options: Any) -> Account:
    """Like `stack.account`, minus the per-user password hashing: a user with `balance` (in
    currency units) and one fresh API key (`key_options` as for AccountService.create_key)."""
    username = "a" + secrets.token_hex(6)

    async def work() -> Account:
        uid = await stack.platform.accounts.create_user(username, _PASSWORD_HASH)
        if micros := parse_amount(balance):
            await stack.platform.ledger.credit(uid, micros, f"test:{username}")
        new = await AccountService(stack.platform).create_key(uid, name="test", **key_options)
        return Account(uid, new.key, username)

    return stack.admin.call(work())


def sse_events(text: str) -> list[str]:
    """The `data:` payloads of a server-sent event stream, in order ([DONE] included)."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data:"):
                out.append(line[5:].strip())
    return out


def sse_json(text: str) -> tuple[list[dict[str, Any]], bool]:
    """(decoded JSON events, whether the stream ended with `data: [DONE]`)."""
    events = sse_events(text)
    done = bool(events) and events[-1] == "[DONE]"
    return [json.loads(e) for e in events if e != "[DONE]"], done


def post(stack: Stack, path: str, key: str | None, **kwargs: Any) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}) or {})
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(stack.url + path, headers=headers, timeout=TIMEOUT, **kwargs)


def assert_openai_error(r: httpx.Response, status: int, **expect: Any) -> dict[str, Any]:
    """The OpenAI error envelope with the given status; `expect` checks fields of `error`."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"], err
    for name, value in expect.items():
        assert err[name] == value, (name, err)
    return err


def curl(*args: str, timeout: float = 20) -> tuple[int, str]:
    """Run the real curl binary; returns (HTTP status, body)."""
    marker = "\n__HTTP_STATUS__"
    proc = subprocess.run(
        [
            "curl",
            "-s",
            "-S",
            "--noproxy",
            "*",
            "--max-time",
            str(int(timeout)),
            *args,
            "-w",
            marker + "%{http_code}",
        ],
        capture_output=True,
        timeout=timeout + 5,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode("utf-8")
    body, _, status = out.rpartition(marker)
    return int(status), body
