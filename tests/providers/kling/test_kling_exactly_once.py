"""Exactly-once submit across a crash: the gateway (a real `llmage serve` subprocess) is killed
with SIGKILL while the upstream holds its reply to the create, i.e. between the upstream create
and the recording of its id. A new process on the same database finds the SUBMITTING task,
recovers the upstream task by querying Kling with our task id as `external_task_id` instead of
creating it again, and finishes it: the upstream saw ONE create, the task ends once, charged
once (the units Kling reports). The harness: support/fakes/exactly_once.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from kling_fake import KlingFake

from llmage.domain.credentials import KeyPair, dump_secret
from support.backends import BACKENDS
from support.fakes.exactly_once import Channel, crash_and_recover

KLING_T2V = "AV38wk4OdtbrT_5XHanLO"
UNIT = 1_000_000


@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_between_create_and_recording_its_id(backend: str, tmp_path: Path) -> None:
    fake = KlingFake()
    channel = Channel(
        provider="kling",
        platform="kling",
        secret=dump_secret(KeyPair(fake.access_key, fake.secret_key)),
        credential_type="pair",
        models=["kling-v1"],
        model_map={},
    )
    body = {"llmid": KLING_T2V, "prompt": "exactly once", "duration": 5}
    out = crash_and_recover(backend, tmp_path, fake, channel, body)

    # recovered by querying our own task id as Kling's external_task_id
    assert any(s.op == "poll" and s.path.endswith("/" + out.taskid) for s in fake.requests)
    assert out.row.upstream_id == next(iter(fake.tasks))
    assert out.charged == 1 * UNIT
