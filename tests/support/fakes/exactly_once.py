"""The SIGKILL-between-create-and-record harness shared by every provider's exactly-once test.

A real `llmage serve` subprocess submits a task while the fake holds its reply to the create (the
task exists upstream, its id is not recorded) and is then killed with SIGKILL. A second process on
the same database must recover the upstream task instead of creating it again and finish it.
`crash_and_recover` runs that story and asserts what holds for every provider: the task SUCCEEDED,
the upstream saw ONE create (never resent), the hold has one terminal entry (a capture) and the
books reconcile. It returns the rest (row, charge, fake) for the provider's own assertions.

    outcome = crash_and_recover(backend, tmp_path, fake, Channel(...), {"llmid": ..., ...})

A provider with no way to find a lost create (no list, no idempotency key: Jimeng) passes
`recoverable=False`: then the task must end FAILED, the hold released (nothing charged), and the
create is still never resent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from conftest import make_settings
from llmage.billing.reconcile import reconcile
from llmage.services.platform import Platform
from support.backends import database_url
from support.fakes.drive import account
from support.servers import LoopThread, free_socket


class Gateway:
    """`llmage serve` in a child process (so it can really be SIGKILLed)."""

    def __init__(self, env: dict[str, str]) -> None:
        sock = free_socket()
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from llmage.cli.main import main; main()", "serve"],
            env={**os.environ, **env, "LLMAGE_PORT": str(self.port)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, "llmage serve exited"
            assert time.monotonic() < deadline, "llmage serve did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass(frozen=True)
class Channel:
    """The channel the fake is wired in as (`platform.channels.add` arguments)."""

    provider: str
    platform: str
    models: list[str]
    secret: str  # dump_secret(...) of the fake's credentials; sealed here
    credential_type: str = "key"
    name: str | None = None  # defaults to the provider
    base_path: str = ""  # appended to the fake's URL (e.g. "/v1")
    model_map: dict[str, str] | None = None
    # Result URLs are public, here on the fake's loopback port: the operator allow-lists it.
    allow_fetch: bool = True


@dataclass
class Outcome:
    taskid: str
    view: dict[str, Any]
    row: Any  # the task row after the recovery
    charged: int  # micro-units the account lost
    fake: Any = field(repr=False)


class _Handle:  # what support.fakes.drive.account needs of a stack
    def __init__(self, admin: LoopThread, platform: Platform) -> None:
        self.admin, self.platform = admin, platform


def crash_and_recover(
    backend: str,
    tmp_path: Path,
    fake: Any,
    channel: Channel,
    body: dict[str, Any],
    *,
    recoverable: bool = True,
) -> Outcome:
    """Submit `body` to POST /llmage/video, SIGKILL the gateway while `fake` holds the create's
    reply, restart it, wait for the end; assert the provider-independent exactly-once facts."""
    with database_url(backend, tmp_path) as url:
        settings = make_settings(tmp_path, url)
        admin = LoopThread(f"{channel.provider}-exactly-once")
        platform = Platform(settings)
        try:
            admin.call(platform.start(migrate=True))
            admin.call(fake.start())
            extra: dict[str, Any] = {}
            if channel.model_map is not None:
                extra["model_map"] = channel.model_map
            admin.call(
                platform.channels.add(
                    name=channel.name or channel.provider,
                    provider=channel.provider,
                    platform=channel.platform,
                    base_url=fake.url + channel.base_path,
                    credential_enc=platform.box.seal(channel.secret),
                    credential_type=channel.credential_type,
                    models=channel.models,
                    options={"poll_interval_ms": 50},
                    **extra,
                )
            )
            env = {
                "LLMAGE_DATA_DIR": str(tmp_path),
                "LLMAGE_DATABASE_URL": url,
                "LLMAGE_SECRET_KEY": str(settings.secret_key),
                "LLMAGE_LOG_JSON": "false",
                "LLMAGE_LOG_LEVEL": "WARNING",
                "LLMAGE_TASK_POLL_INTERVAL_MS": "50",
                "LLMAGE_TASK_IDLE_POLL_SECONDS": "0.05",
                "LLMAGE_TASK_LEASE_SECONDS": "2",
                "LLMAGE_TASK_UPSTREAM_TIMEOUT_SECONDS": "60",
            }
            if channel.allow_fetch:
                env["LLMAGE_FETCH_ALLOW_HOSTS"] = json.dumps([fake.host_port])
            return _story(platform, admin, fake, env, body, recoverable)
        finally:
            admin.call(fake.stop())
            admin.call(platform.close())
            admin.stop()


def _story(
    platform: Platform,
    admin: LoopThread,
    fake: Any,
    env: dict[str, str],
    body: dict[str, Any],
    recoverable: bool = True,
) -> Outcome:
    acc = account(_Handle(admin, platform), "100")  # type: ignore[arg-type]
    before = admin.call(platform.accounts.balance(acc.user_id))[0]
    auth = {"Authorization": f"Bearer {acc.key}"}

    fake.hold_creates()  # the create is received, its reply held back
    first = Gateway(env)
    try:
        r = httpx.post(first.url + "/llmage/video", json=body, headers=auth, timeout=30)
        assert r.status_code == 200, r.text
        taskid = r.json()["taskid"]
        deadline = time.monotonic() + 30
        while fake.creates == 0:  # the upstream has the create; our process waits for its id
            assert time.monotonic() < deadline, "the create never reached the upstream"
            time.sleep(0.02)
        row = admin.call(platform.task_repo.get(taskid))
        assert row is not None and row.status.value == "SUBMITTING" and row.upstream_id is None
    finally:
        first.kill()
    admin.call(_release(fake))  # the reply now goes to a dead connection

    # The dead process's in-flight window (its create deadline) is over: due now.
    admin.call(_due_now(platform, taskid))
    second = Gateway(env)
    try:
        deadline = time.monotonic() + 60
        while True:
            view = httpx.get(
                second.url + "/llmage/tasks", params={"taskid": taskid}, headers=auth, timeout=30
            ).json()
            if view["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                break
            assert time.monotonic() < deadline, view
            time.sleep(0.05)
    finally:
        second.stop()

    assert view["status"] == ("SUCCEEDED" if recoverable else "FAILED"), view
    assert fake.creates == 1
    assert [s.op for s in fake.requests].count("create") == 1  # never resent
    row = admin.call(platform.task_repo.get(taskid))
    assert row is not None
    entries = admin.call(_settlements(platform, row.hold_id))
    # one terminal state: charged once, or (lost for good) released, unbilled
    assert [kind for kind, _ in entries] == ["capture" if recoverable else "release"]
    charged = before - admin.call(platform.accounts.balance(acc.user_id))[0]
    assert admin.call(reconcile(platform.db.engine)) == []
    return Outcome(taskid=taskid, view=view, row=row, charged=charged, fake=fake)


async def _release(fake: Any) -> None:
    fake.release_creates()


async def _due_now(platform: Platform, taskid: str) -> None:
    async with platform.db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE tasks SET next_poll_at = 0, lease_until = NULL WHERE id = :t"),
            {"t": taskid},
        )


async def _settlements(platform: Platform, hold_id: str) -> list[tuple[str, int]]:
    async with platform.db.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT kind, delta_balance FROM ledger_entries"
                " WHERE hold_id = :h AND kind IN ('capture', 'release')"
            ),
            {"h": hold_id},
        )
        return [(str(k), int(d)) for k, d in rows.all()]
