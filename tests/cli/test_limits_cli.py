"""The limit commands as an operator runs them: `key create --rpm/--tpm/--concurrency`,
`key update` (also per model, `off` clears), `user limits`, `user disable|enable`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LLMAGE = str(Path(sys.executable).with_name("llmage"))


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMAGE_")}
    env.update(LLMAGE_DATA_DIR=str(data_dir), LLMAGE_LOG_LEVEL="WARNING")
    return subprocess.run(
        [LLMAGE, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def ok(data_dir: Path, *args: str) -> str:
    r = run(data_dir, *args)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def test_limit_commands(tmp_path: Path) -> None:
    ok(tmp_path, "--init", "user", "create", "ann", "--password", "password-123")
    out = ok(tmp_path, "key", "create", "ann", "--rpm", "5", "--tpm", "1000", "--concurrency", "2")
    key_id = out.split()[1]
    assert ok(tmp_path, "key", "update", key_id) == (
        f"key {key_id}: rpm=5, tpm=1000, concurrency=2\n"
    )
    out = ok(tmp_path, "key", "update", key_id, "--rpm", "off", "--model", "qwen3-max")
    assert out == f"key {key_id}: rpm=5, tpm=1000, concurrency=2\n"  # nothing was set there
    out = ok(tmp_path, "key", "update", key_id, "--rpm", "1", "--model", "qwen3-max")
    assert out == f"key {key_id}: rpm=5, tpm=1000, concurrency=2, [qwen3-max] rpm=1\n"
    out = ok(tmp_path, "key", "update", key_id, "--tpm", "off")
    assert out == f"key {key_id}: rpm=5, concurrency=2, [qwen3-max] rpm=1\n"

    assert ok(tmp_path, "user", "limits", "ann") == "ann: no limits\n"
    out = ok(tmp_path, "user", "limits", "ann", "--tasks", "4", "--rpm", "60")
    assert out == "ann: rpm=60, tasks=4\n"

    bad = run(tmp_path, "user", "limits", "ann", "--rpm", "-3")
    assert bad.returncode == 2 and "whole number of 0 or more" in bad.stderr
    bad = run(tmp_path, "key", "update", key_id, "--tasks", "2", "--model", "qwen3-max")
    assert bad.returncode == 1 and "applies to all models" in bad.stderr
    bad = run(tmp_path, "key", "update", "999", "--rpm", "1")
    assert bad.returncode == 1 and "no key 999" in bad.stderr

    assert ok(tmp_path, "user", "disable", "ann") == "disabled user ann\n"
    assert ok(tmp_path, "user", "enable", "ann") == "enabled user ann\n"
