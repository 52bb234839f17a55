"""Exactly-once submit to Ark across a crash: a real `llmage serve` subprocess is SIGKILLed while
the fake Ark holds its reply to the create (the task exists upstream, its id is not recorded).
A new process on the same database finds the SUBMITTING task, looks it up in Ark's task list
(`filter.model`, creation time, echoed settings) instead of creating it again, and finishes it:
Ark saw ONE create, the task ends once, charged once (from the reported tokens)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import httpx
import pytest
from ark_fake import ArkFake, tokens_for
from sqlalchemy import text

from conftest import make_settings
from llmage.billing.reconcile import reconcile
from llmage.domain.credentials import ApiKey, dump_secret
from llmage.services.platform import Platform
from support.backends import BACKENDS, database_url
from support.fakes.drive import account
from support.servers import LoopThread, free_socket

T2V_20 = "YjjGgxO_Xma8PWsMjJvps"
S20 = "doubao-seedance-2-0-260128"
SETTLE_720P = 46_000_000  # the catalog's 2.0 settle rate per million tokens at 720p


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


World = tuple[Platform, LoopThread, ArkFake, dict[str, str]]


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with database_url(request.param, tmp_path) as url:
        settings = make_settings(tmp_path, url)
        admin = LoopThread("ark-exactly-once")
        platform = Platform(settings)
        fake = ArkFake()
        try:
            admin.call(platform.start(migrate=True))
            admin.call(fake.start())
            admin.call(
                platform.channels.add(
                    name="ark",
                    provider="ark",
                    platform="volcengine",
                    base_url=fake.url + "/api/v3",
                    credential_enc=platform.box.seal(dump_secret(ApiKey(fake.api_key))),
                    credential_type="key",
                    models=[S20],
                    options={"poll_interval_ms": 50},
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
                # Ark's result URL is public; here it is the fake on loopback (operator allow-list).
                "LLMAGE_FETCH_ALLOW_HOSTS": json.dumps([fake.host_port]),
            }
            yield platform, admin, fake, env
        finally:
            admin.call(fake.stop())
            admin.call(platform.close())
            admin.stop()


def test_killed_between_the_ark_create_and_recording_its_id(world: World) -> None:
    platform, admin, fake, env = world

    class Handle:  # what support.fakes.drive.account needs of a stack
        pass

    handle = Handle()
    handle.admin, handle.platform = admin, platform  # type: ignore[attr-defined]
    acc = account(handle, "100")  # type: ignore[arg-type]
    before = admin.call(platform.accounts.balance(acc.user_id))[0]
    auth = {"Authorization": f"Bearer {acc.key}"}

    fake.hold_creates()  # the task is made upstream, the reply held back
    first = Gateway(env)
    try:
        body = {"llmid": T2V_20, "prompt": "exactly once", "duration": 5, "resolution": "720p",
                "ratio": "16:9"}  # fmt: skip
        r = httpx.post(first.url + "/llmage/video", json=body, headers=auth, timeout=30)
        assert r.status_code == 200, r.text
        taskid = r.json()["taskid"]
        deadline = time.monotonic() + 30
        while fake.creates == 0:
            assert time.monotonic() < deadline, "the create never reached the upstream"
            time.sleep(0.02)
        row = admin.call(platform.task_repo.get(taskid))
        assert row is not None and row.status.value == "SUBMITTING" and row.upstream_id is None
    finally:
        first.kill()
    admin.call(_release(fake))  # the reply now goes to a dead connection

    admin.call(_due_now(platform, taskid))  # the dead process's in-flight window is over
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

    assert view["status"] == "SUCCEEDED", view
    assert fake.creates == 1
    assert [s.op for s in fake.requests].count("create") == 1  # never resent
    (listed,) = [s for s in fake.requests if s.op == "list"]
    assert listed.query["filter.model"] == S20
    row = admin.call(platform.task_repo.get(taskid))
    assert row is not None and row.upstream_id == next(iter(fake.tasks))
    entries = admin.call(_settlements(platform, row.hold_id))
    assert [kind for kind, _ in entries] == ["capture"]  # one terminal state, charged once
    tokens = tokens_for("720p", "16:9", 5)
    charge = math.ceil(Fraction(SETTLE_720P) * tokens / 1_000_000)
    assert before - admin.call(platform.accounts.balance(acc.user_id))[0] == charge
    assert admin.call(reconcile(platform.db.engine)) == []


async def _release(fake: ArkFake) -> None:
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
