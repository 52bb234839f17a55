"""Exactly-once submit across a crash: the gateway (a real `llmage serve` subprocess) is killed
with SIGKILL while the upstream holds its reply to the create, i.e. between the upstream create
and the recording of its id. A new process on the same database finds the SUBMITTING task,
recovers the upstream task from the provider's list instead of creating it again, and finishes
it: the upstream saw ONE create, the task ends once, charged once. The harness:
support/fakes/exactly_once.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai_fake import OpenAIMediaFake

from llmage.domain.credentials import ApiKey, dump_secret
from support.backends import BACKENDS
from support.fakes.exactly_once import Channel, crash_and_recover

HH_T2V = "o5vfXYD5BURJWRTWpopE5"
RATE_720P = 600_000


@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_between_create_and_recording_its_id(backend: str, tmp_path: Path) -> None:
    fake = OpenAIMediaFake()
    channel = Channel(
        name="openai-media",
        provider="openai_compat",
        platform="openai",
        base_path="/v1",
        secret=dump_secret(ApiKey(fake.api_key)),
        models=["happyhorse-1.0-t2v"],
        model_map={"happyhorse-1.0-t2v": "sora-2"},
        allow_fetch=False,  # the video comes through the API (GET /videos/{id}/content)
    )
    body = {"llmid": HH_T2V, "prompt": "exactly once", "duration": 4}
    out = crash_and_recover(backend, tmp_path, fake, channel, body)

    assert "list" in [s.op for s in fake.requests]  # recovered from the provider's list
    assert out.row.upstream_id == next(iter(fake.tasks))
    assert out.charged == 4 * RATE_720P
