"""Vidu, exactly-once submit across a crash: the gateway (a real `llmage serve` subprocess) is
killed with SIGKILL while the fake Vidu holds its reply to the create, i.e. between the upstream
create and the recording of its id. A new process on the same database finds the SUBMITTING
task, recovers the upstream task from Vidu's task list by the `payload` (our task id) it echoes
instead of creating it again, and finishes it: Vidu saw ONE create, the task ends once, charged
once (the credits Vidu reports). The harness: support/fakes/exactly_once.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from vidu_fake import ViduFake

from llmage.domain.credentials import ApiKey, dump_secret
from support.backends import BACKENDS
from support.fakes import Lifecycle
from support.fakes.exactly_once import Channel, crash_and_recover

R0ILL = "r0ill7L0s6PtBS8mkmg-7"  # seed 000 t2v, viduq3-pro
CREDITS = 30 * 4  # the fake bills 30 credits a second at 720p
CREDIT_720P = 20_000  # the catalog's price of one credit at 720p


@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_between_create_and_recording_its_id(backend: str, tmp_path: Path) -> None:
    fake = ViduFake()
    fake.lifecycle = Lifecycle.succeeding()
    channel = Channel(
        provider="vidu",
        platform="vidu",
        secret=dump_secret(ApiKey(fake.api_key)),
        models=["viduq3-pro"],
    )
    body = {"llmid": R0ILL, "prompt": "exactly once", "duration": 4, "resolution": "720p"}
    out = crash_and_recover(backend, tmp_path, fake, channel, body)

    assert "list" in [s.op for s in fake.requests]  # recovered from the provider's list
    (task,) = fake.tasks.values()
    assert task.body["payload"] == out.taskid  # found again by the payload Vidu echoes
    assert out.row.upstream_id == task.id
    assert out.charged == CREDITS * CREDIT_720P
