"""Exactly-once submit across a crash: the gateway (a real `llmage serve` subprocess) is killed
with SIGKILL while the upstream holds its reply to the create, i.e. between the upstream create
and the recording of its id. Jimeng has no list call and no idempotency key, so the new process
cannot find the task: it must NOT create it again; the task fails and its hold is released
(nothing charged). The harness: support/fakes/exactly_once.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from jimeng_fake import JimengFake

from llmage.domain.credentials import KeyPair, dump_secret
from support.backends import BACKENDS
from support.fakes.exactly_once import Channel, crash_and_recover

JIMENG_T2V = "Bsy6AvQ1kFzuhQl8N6j4k"


@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_between_create_and_recording_its_id(backend: str, tmp_path: Path) -> None:
    fake = JimengFake()
    channel = Channel(
        provider="jimeng",
        platform="jimeng",
        secret=dump_secret(KeyPair(fake.access_key, fake.secret_key)),
        credential_type="pair",
        models=["jimeng_vgfm_t2v_l20"],
        model_map={},
    )
    body = {"llmid": JIMENG_T2V, "prompt": "exactly once", "duration": 5}
    out = crash_and_recover(backend, tmp_path, fake, channel, body, recoverable=False)

    assert out.charged == 0
    assert out.row.upstream_id is None  # never learnt, never guessed
    assert out.view["error"]["code"] == "submit_unknown"
    assert not any(s.op == "poll" for s in fake.requests)
