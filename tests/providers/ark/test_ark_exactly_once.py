"""Exactly-once submit to Ark across a crash: a real `llmage serve` subprocess is SIGKILLed while
the fake Ark holds its reply to the create (the task exists upstream, its id is not recorded).
A new process on the same database finds the SUBMITTING task, looks it up in Ark's task list
(`filter.model`, creation time, echoed settings) instead of creating it again, and finishes it:
Ark saw ONE create, the task ends once, charged once (from the reported tokens). The harness:
support/fakes/exactly_once.py."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import pytest
from ark_fake import ArkFake, tokens_for

from llmage.domain.credentials import ApiKey, dump_secret
from support.backends import BACKENDS
from support.fakes.exactly_once import Channel, crash_and_recover

T2V_20 = "YjjGgxO_Xma8PWsMjJvps"
S20 = "doubao-seedance-2-0-260128"
SETTLE_720P = 46_000_000  # the catalog's 2.0 settle rate per million tokens at 720p


@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_between_the_ark_create_and_recording_its_id(backend: str, tmp_path: Path) -> None:
    fake = ArkFake()
    channel = Channel(
        provider="ark",
        platform="volcengine",
        base_path="/api/v3",
        secret=dump_secret(ApiKey(fake.api_key)),
        models=[S20],
    )
    body = {"llmid": T2V_20, "prompt": "exactly once", "duration": 5, "resolution": "720p",
            "ratio": "16:9"}  # fmt: skip
    out = crash_and_recover(backend, tmp_path, fake, channel, body)

    (listed,) = [s for s in fake.requests if s.op == "list"]
    assert listed.query["filter.model"] == S20
    assert out.row.upstream_id == next(iter(fake.tasks))
    tokens = tokens_for("720p", "16:9", 5)
    assert out.charged == math.ceil(Fraction(SETTLE_720P) * tokens / 1_000_000)
