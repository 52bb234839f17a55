"""Exactly-once submit across a crash: the gateway (a real `llmage serve` subprocess) is killed
with SIGKILL while the upstream holds its reply to the create, i.e. between the upstream create
and the recording of its id. A new process on the same database finds the SUBMITTING task,
recovers the upstream task by querying Kling with our task id as `external_task_id` instead of
creating it again, and finishes it: the upstream saw ONE create, the task ends once, charged
once (the units Kling reports)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kling_fake import KlingFake

from conftest import make_settings
from llmage.billing.reconcile import reconcile
from llmage.domain.credentials import KeyPair, dump_secret
from llmage.services.platform import Platform
from support.backends import BACKENDS, database_url
from support.fakes.drive import account
from support.servers import LoopThread, free_socket

KLING_T2V = "AV38wk4OdtbrT_5XHanLO"
UNIT = 1_000_000


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


@pytest.fixture(params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Platform, LoopThread, KlingFake, dict[str, str]]]:
    with database_url(request.param, tmp_path) as url:
        settings = make_settings(tmp_path, url)
        admin = LoopThread("kling-exactly-once")
        platform = Platform(settings)
        fake = KlingFake()
        try:
            admin.call(platform.start(migrate=True))
            admin.call(fake.start())
            admin.call(
                platform.channels.add(
                    name="kling",
                    provider="kling",
                    platform="kling",
                    base_url=fake.url,
                    credential_enc=platform.box.seal(
                        dump_secret(KeyPair(fake.access_key, fake.secret_key))
                    ),
                    credential_type="pair",
                    models=["kling-v1"],
                    model_map={},
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
                # Kling's result URL is public (on the fake's loopback port): allow-list it
                "LLMAGE_FETCH_ALLOW_HOSTS": json.dumps([fake.host_port]),
            }
            yield platform, admin, fake, env
        finally:
            admin.call(fake.stop())
            admin.call(platform.close())
            admin.stop()


def test_killed_between_create_and_recording_its_id(
    world: tuple[Platform, LoopThread, KlingFake, dict[str, str]],
) -> None:
    platform, admin, fake, env = world

    class Handle:  # what support.fakes.drive.account needs of a stack
        pass

    handle = Handle()
    handle.admin, handle.platform = admin, platform  # type: ignore[attr-defined]
    acc = account(handle, "100")  # type: ignore[arg-type]
    before = admin.call(platform.accounts.balance(acc.user_id))[0]
    auth = {"Authorization": f"Bearer {acc.key}"}

    fake.hold_creates()  # the create is received, its reply held back
    first = Gateway(env)
    try:
        r = httpx.post(
            first.url + "/llmage/video",
            json={"llmid": KLING_T2V, "prompt": "exactly once", "duration": 5},
            headers=auth,
            timeout=30,
        )
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

    assert view["status"] == "SUCCEEDED", view
    assert fake.creates == 1
    assert [s.op for s in fake.requests].count("create") == 1  # never resent
    # recovered by querying our own task id as Kling's external_task_id
    assert any(s.op == "poll" and s.path.endswith("/" + taskid) for s in fake.requests)
    row = admin.call(platform.task_repo.get(taskid))
    assert row is not None and row.upstream_id == next(iter(fake.tasks))
    entries = admin.call(_settlements(platform, row.hold_id))
    assert [kind for kind, _ in entries] == ["capture"]  # one terminal state, charged once
    assert before - admin.call(platform.accounts.balance(acc.user_id))[0] == 1 * UNIT
    assert admin.call(reconcile(platform.db.engine)) == []


async def _release(fake: KlingFake) -> None:
    fake.release_creates()


async def _due_now(platform: Platform, taskid: str) -> None:
    from sqlalchemy import text

    async with platform.db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE tasks SET next_poll_at = 0, lease_until = NULL WHERE id = :t"),
            {"t": taskid},
        )


async def _settlements(platform: Platform, hold_id: str) -> list[tuple[str, int]]:
    from sqlalchemy import text

    async with platform.db.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT kind, delta_balance FROM ledger_entries"
                " WHERE hold_id = :h AND kind IN ('capture', 'release')"
            ),
            {"h": hold_id},
        )
        return [(str(k), int(d)) for k, d in rows.all()]
