"""bench/tasks_load.py at test size: 300 tasks open at once on the sim provider (1 s upstream
latency) drain through a real `llmage serve` while chat keeps answering. The full 5,000-task run
is the acceptance benchmark (docs/benchmarks.md, "Task poller"); this keeps the script honest
in CI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "tasks_load.py"
TASKS = 300


@pytest.mark.parametrize("mode", ["backlog"])
def test_poller_keeps_up_with_chat_flowing(tmp_path: Path, mode: str) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--tasks",
            str(TASKS),
            "--mode",
            mode,
            "--chat-rps",
            "10",
            "--baseline",
            "2",
            "--deadline",
            "90",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert out.exists(), proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert proc.returncode == 0, (res, proc.stdout[-2000:], proc.stderr[-3000:])
    assert res["ok"] is True
    assert res["submitted"] == TASKS and res["submit_errors"] == 0
    assert res["peak_open"] == TASKS  # really all open at once
    assert (res["succeeded"], res["failed"], res["open_at_end"]) == (TASKS, 0, 0)
    assert res["reconcile_ok"], res["reconcile_output"]
    assert not res["timed_out"]
    # 1 s upstream latency: a poller that keeps up drains 300 due tasks in a few seconds.
    assert res["complete_seconds"] < 30, res["complete_seconds"]
    # Chat is not starved: every request answered, and quickly.
    during = res["chat_during"]
    assert during["errors"] == 0 and during["requests"] > 0, during
    assert during["p99_ms"] < 2000, during
    assert "| **throughput** |" in proc.stdout  # the markdown table
