"""Media retention on a hand-driven clock: a finished task's stored inputs and outputs are
deleted once it is older than the retention, the task keeps its record and every view says
its files expired; a file another, younger task still names (content addressing) stays."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from taskhelp import SD15_I2V, ChannelSpec, TaskEnv, envs_for_backends, jpeg_bytes, pick

from llmage.services.retention import MediaReaper
from support.backends import BACKENDS

CHANNELS = [ChannelSpec("sim-fast", [SD15_I2V], {"latency_ms": 100})]
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def envs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TaskEnv | str]]:
    with envs_for_backends(tmp_path_factory, "retention", CHANNELS, media_retention_days=7) as out:
        yield out


def stored(env: TaskEnv, key: str) -> bool:
    return env.admin.call(env.platform.storage.size(key)) is not None


@pytest.mark.parametrize("backend", BACKENDS)
def test_retention_deletes_old_files_and_keeps_the_record(
    backend: str, envs: dict[str, TaskEnv | str]
) -> None:
    env = pick(envs, backend)
    acc = env.account("1000")
    frame = jpeg_bytes(color=(10, 200, 30))  # the same input bytes for both tasks
    body = {"llmid": SD15_I2V, "prompt": "retention", "duration": 4, "resolution": "480p"}
    files = {"image1_file": ("f.jpg", frame, "image/jpeg")}
    r = env.post("/llmage/video", acc, data={k: str(v) for k, v in body.items()}, files=files)
    assert r.status_code == 200, r.text
    old = r.json()["taskid"]
    assert env.wait(acc, old)["status"] == "SUCCEEDED"
    body["duration"] = 5  # other output bytes (sim renders by length and size), the same input
    r = env.post("/llmage/video", acc, data={k: str(v) for k, v in body.items()}, files=files)
    young = r.json()["taskid"]
    assert env.wait(acc, young)["status"] == "SUCCEEDED"
    old_row, young_row = env.task(old), env.task(young)
    assert old_row.finished_at is not None and young_row.finished_at is not None
    shared_input = old_row.inputs["image1_file"].key  # type: ignore[union-attr]
    assert young_row.inputs["image1_file"].key == shared_input  # type: ignore[union-attr]
    old_outputs = [old_row.outputs[k].key for k in ("video", "cover")]  # type: ignore[union-attr]
    assert old_row.outputs != young_row.outputs
    assert all(stored(env, k) for k in [*old_outputs, shared_input])

    clock = {"now": old_row.finished_at + 1 + 7 * DAY_MS}  # the old task is due, not the young
    if young_row.finished_at <= old_row.finished_at:
        pytest.skip("both tasks finished in the same millisecond")
    reaper = MediaReaper(
        env.platform.db.engine,
        env.platform.storage,
        retention_days=7,
        clock=lambda: clock["now"],
    )
    assert env.admin.call(reaper.sweep()) == 1
    assert not any(stored(env, k) for k in old_outputs)
    assert stored(env, shared_input)  # the young task still names it
    assert env.admin.call(reaper.sweep()) == 0  # nothing more is due

    row = env.task(old)
    assert row.status.value == "SUCCEEDED" and row.charged == old_row.charged
    assert row.usage == old_row.usage and row.media_expired_at == clock["now"]
    view = env.status(acc, old)
    assert view["status"] == "SUCCEEDED" and view["media_expired"] is True
    assert view["video"] is None and view["image"] is None
    video = env.get(f"/v1/videos/{old}", acc).json()
    assert video["status"] == "completed" and video["expires_at"] == clock["now"] // 1000
    content = env.get(f"/v1/videos/{old}/content", acc)
    assert content.status_code == 404 and "expired" in content.json()["error"]["message"]
    # The young task is untouched and still served.
    assert env.get(f"/v1/videos/{young}/content", acc).status_code == 200

    clock["now"] = young_row.finished_at + 1 + 7 * DAY_MS
    assert env.admin.call(reaper.sweep()) == 1
    assert not stored(env, shared_input)
    assert env.status(acc, young)["media_expired"] is True
    assert env.reconcile() == []
