"""Exactly-once submit on DashScope across a crash: the gateway (a real `llmage serve`
subprocess) is killed with SIGKILL while the fake DashScope holds its reply to the create, i.e.
between the upstream create and the recording of its id. A new process on the same database finds
the SUBMITTING task, recovers the upstream task from DashScope's task list (by model and creation
time, then checked against its prompt) instead of creating it again, and finishes it: the
upstream saw ONE create, the task ends once, charged once (support/fakes/exactly_once.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dashscope_fake import DashScopeFake

from llmage.domain.credentials import ApiKey, dump_secret
from support.backends import BACKENDS
from support.fakes.exactly_once import Channel, crash_and_recover

HH_T2V = "o5vfXYD5BURJWRTWpopE5"
RATE_720P = 600_000


@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_between_create_and_recording_its_id(backend: str, tmp_path: Path) -> None:
    fake = DashScopeFake()
    channel = Channel(
        name="dashscope",
        provider="dashscope",
        platform="aliyun",
        secret=dump_secret(ApiKey(fake.api_key)),
        models=["happyhorse-1.0-t2v"],
    )
    body = {"llmid": HH_T2V, "prompt": "exactly once", "duration": 4, "resolution": "720p"}
    out = crash_and_recover(backend, tmp_path, fake, channel, body)

    assert out.row.upstream_id == next(iter(fake.tasks))
    assert out.row.upstream_state.get("verify_prompt") == "1"  # recovered, then prompt checked
    (listing,) = [s.query for s in fake.requests if s.op == "list"]
    assert listing["model_name"] == "happyhorse-1.0-t2v"
    assert out.charged == 4 * RATE_720P
