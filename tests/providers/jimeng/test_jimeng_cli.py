"""`llmage channel add --provider jimeng --access-key .. --secret-key ..`: the registry line gives
the CLI the provider, its default platform and base URL, and a key pair as its credential."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LLMAGE = str(Path(sys.executable).with_name("llmage"))


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMAGE_")}
    env.update(
        LLMAGE_DATA_DIR=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
        LLMAGE_LOG_LEVEL="WARNING",
        PYTHONIOENCODING="utf-8",
    )
    return subprocess.run(
        [LLMAGE, *args],
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_channel_add_with_a_key_pair(tmp_path: Path) -> None:
    added = run(
        tmp_path,
        "channel", "add", "--name", "jm", "--provider", "jimeng",
        "--access-key", "AKLTexample", "--secret-key", "jimeng-secret-value",
        "--models", "jimeng_vgfm_t2v_l20,jimeng_t2v_v30",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "on platform jimeng" in added.stdout
    listing = run(tmp_path, "channel", "list")
    assert listing.returncode == 0, listing.stderr
    [row] = [line for line in listing.stdout.splitlines() if " jm " in line]
    assert "https://visual.volcengineapi.com" in row and "credential=pair" in row
    assert "jimeng-secret-value" not in listing.stdout + listing.stderr


def test_channel_add_refuses_a_half_pair(tmp_path: Path) -> None:
    half = run(
        tmp_path,
        "channel", "add", "--name", "jm", "--provider", "jimeng", "--access-key", "AKLTexample",
        "--models", "jimeng_vgfm_t2v_l20",
    )  # fmt: skip
    assert half.returncode != 0 and "Traceback" not in half.stderr
    assert "secret_key" in half.stderr
