"""A task that outlives `task_timeout_seconds` fails with code `timeout` and is not charged."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from taskhelp import SD15_T2V, ChannelSpec, TaskEnv, assert_released, envs_for_backends, pick

from support.backends import BACKENDS

# An upstream job that never ends while the test runs: only the deadline can end the task.
CHANNELS = [ChannelSpec("sim-endless", [SD15_T2V], {"latency_ms": 3_600_000})]


@pytest.fixture(scope="module")
def started(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, tuple[TaskEnv | str, object]]]:
    """Both backends' tasks are submitted together, so their waits overlap."""
    with envs_for_backends(tmp_path_factory, "timeout", CHANNELS, task_timeout_seconds=2) as envs:
        out: dict[str, tuple[TaskEnv | str, object]] = {}
        for backend, env in envs.items():
            if isinstance(env, str):
                out[backend] = (env, None)
                continue
            acc = env.account("100")
            before = env.balance(acc.user_id)[0]
            taskid = env.submit(acc, {"llmid": SD15_T2V, "prompt": "slow", "duration": 4})
            out[backend] = (env, (acc, taskid, before, time.monotonic()))
        yield out


@pytest.mark.parametrize("backend", BACKENDS)
def test_timeout_fails_and_releases(
    backend: str, started: dict[str, tuple[TaskEnv | str, object]]
) -> None:
    env_or_reason, info = started[backend]
    env = pick({backend: env_or_reason}, backend)
    acc, taskid, before, t0 = info  # type: ignore[misc]
    view = env.wait(acc, taskid, timeout=60)
    elapsed = time.monotonic() - t0
    assert view["status"] == "FAILED", view
    assert view["error"]["code"] == "timeout", view
    assert view["usage"] is None and view["video"] is None
    assert elapsed >= 2, elapsed  # not before the deadline; the endless upstream cannot end it
    row = env.task(taskid)
    assert row.error_code == "timeout"
    assert row.charged == 0
    assert_released(env, acc, row, before)
