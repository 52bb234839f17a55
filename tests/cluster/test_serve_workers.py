"""`llmage serve --workers N`: N processes on one port over PostgreSQL; refused on SQLite."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
from clusterhelp import LLMAGE, free_port
from cryptography.fernet import Fernet

from support.backends import database_url


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMAGE_")}
    return {**env, "LLMAGE_LOG_JSON": "false", **extra}


def test_workers_are_refused_on_sqlite(tmp_path: Path) -> None:
    r = subprocess.run(
        [LLMAGE, "serve", "--workers", "2"],
        env=clean_env(LLMAGE_DATA_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 2
    assert "--workers 2 needs PostgreSQL" in r.stderr
    assert not (tmp_path / "llmage.db").exists()  # refused before touching anything


def spawned_children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    kids = []
    for child in out.stdout.split():
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"spawn_main" in cmdline:
            kids.append(int(child))
    return kids


def test_two_workers_serve_one_port_on_postgres(tmp_path: Path) -> None:
    with database_url("postgres", tmp_path) as url:
        port = free_port()
        proc = subprocess.Popen(
            [LLMAGE, "serve", "--workers", "2", "--port", str(port)],
            env=clean_env(
                LLMAGE_DATA_DIR=str(tmp_path),
                LLMAGE_DATABASE_URL=url,
                LLMAGE_SECRET_KEY=Fernet.generate_key().decode(),
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, "serve exited"
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "no worker answered"
                time.sleep(0.1)
            while len(spawned_children(proc.pid)) < 2:
                assert time.monotonic() < deadline, spawned_children(proc.pid)
                time.sleep(0.1)
            assert len(spawned_children(proc.pid)) == 2
            for _ in range(20):
                assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        assert proc.returncode == 0
