"""First contact: admin commands run from another directory use the server's database or say
why not (never a new empty one by accident); client commands find the server's port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from llmage.cli.locate import default_base_url, marker_path, write_marker
from llmage.settings import Settings, get_settings

LLMAGE = str(Path(sys.executable).with_name("llmage"))


def env_for(xdg: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMAGE_")}
    env.update(XDG_CONFIG_HOME=str(xdg), LLMAGE_LOG_LEVEL="WARNING", PYTHONIOENCODING="utf-8")
    env.update(extra)
    return env


def llmage(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LLMAGE, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(the server's checkout, some other directory, the config home)."""
    checkout, elsewhere, xdg = tmp_path / "checkout", tmp_path / "elsewhere", tmp_path / "xdg"
    for d in (checkout, elsewhere, xdg):
        d.mkdir()
    return checkout, elsewhere, xdg


def test_no_database_here_and_no_server_known_refuses_without_creating(
    places: tuple[Path, Path, Path],
) -> None:
    _, elsewhere, xdg = places
    p = llmage(elsewhere, env_for(xdg), "user", "list")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    assert "no llmage database at" in p.stderr and "--init" in p.stderr
    assert "LLMAGE_DATA_DIR" in p.stderr
    assert not (elsewhere / "var").exists()  # nothing was created

    made = llmage(
        elsewhere,
        env_for(xdg),
        *("--init", "user", "create", "zoe", "--password", "p" * 9, "--phone", "+86 139-1234-5678"),
    )
    assert made.returncode == 0, made.stderr
    assert "creating a new database" in made.stderr
    assert (elsewhere / "var" / "llmage.db").exists()
    listed = llmage(elsewhere, env_for(xdg), "user", "list")  # ./var now exists: used quietly
    assert listed.returncode == 0 and "zoe" in listed.stdout and listed.stderr == ""


def test_admin_commands_elsewhere_use_the_servers_data_dir(
    places: tuple[Path, Path, Path],
) -> None:
    checkout, elsewhere, xdg = places
    made = llmage(checkout, env_for(xdg), "--init", "user", "create", "demo", "--password", "p" * 9)
    assert made.returncode == 0, made.stderr
    # What `llmage serve` records when it starts in the checkout.
    os.environ["XDG_CONFIG_HOME"] = str(xdg)
    try:
        written = write_marker(Settings(data_dir=checkout / "var"), "0.0.0.0", 8123)  # noqa: S104
        assert written == marker_path() == xdg / "llmage" / "server.json"
    finally:
        del os.environ["XDG_CONFIG_HOME"]

    p = llmage(elsewhere, env_for(xdg), "credit", "demo", "7")
    assert p.returncode == 0, p.stderr
    assert "balance 7.000000" in p.stdout
    assert f"using the server's data directory {(checkout / 'var').resolve()}" in p.stderr
    assert not (elsewhere / "var").exists()
    where = llmage(elsewhere, env_for(xdg), "where")
    assert where.returncode == 0, where.stderr
    assert f"data dir:  {(checkout / 'var').resolve()}" in where.stdout
    assert "server:    http://127.0.0.1:8123" in where.stdout

    # An explicit choice still wins (and says it is creating a new database).
    other = elsewhere / "other-data"
    p = llmage(elsewhere, env_for(xdg, LLMAGE_DATA_DIR=str(other)), "user", "list")
    assert p.returncode == 0 and "creating a new database" in p.stderr
    assert "demo" not in p.stdout


def test_a_server_on_an_environment_database_url_is_not_guessed(
    places: tuple[Path, Path, Path],
) -> None:
    checkout, elsewhere, xdg = places
    marker = xdg / "llmage" / "server.json"
    marker.parent.mkdir(parents=True)
    marker.write_text(
        json.dumps({"data_dir": str(checkout), "database": "environment", "cwd": str(checkout)})
    )
    p = llmage(elsewhere, env_for(xdg), "key", "list")
    assert p.returncode == 1 and "LLMAGE_DATABASE_URL" in p.stderr, p.stderr
    assert not (elsewhere / "var").exists()


def test_client_commands_follow_llmage_port(places: tuple[Path, Path, Path]) -> None:
    _, elsewhere, xdg = places
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = llmage(
        elsewhere,
        env_for(xdg, LLMAGE_PORT=str(port), LLMAGE_API_KEY="sk-" + "x" * 48),
        "video",
        "a cat",
        "--model",
        "doubao-seedance-1-5-pro-251215",
    )
    assert p.returncode == 1
    assert f"cannot reach http://127.0.0.1:{port}" in p.stderr, p.stderr


def test_default_base_url_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("LLMAGE_PORT", "LLMAGE_HOST", "LLMAGE_PUBLIC_BASE_URL", "LLMAGE_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))

    def url() -> str:
        get_settings.cache_clear()
        return default_base_url()

    try:
        assert url() == "http://127.0.0.1:8000"
        write_marker(Settings(data_dir=tmp_path / "var"), "127.0.0.1", 9001)
        assert url() == "http://127.0.0.1:9001"  # the last started server
        monkeypatch.setenv("LLMAGE_PORT", "9002")
        assert url() == "http://127.0.0.1:9002"
        monkeypatch.setenv("LLMAGE_HOST", "0.0.0.0")  # noqa: S104
        assert url() == "http://127.0.0.1:9002"  # a bind-all address is reached on loopback
        monkeypatch.setenv("LLMAGE_PUBLIC_BASE_URL", "https://gen.example.com/")
        assert url() == "https://gen.example.com"
    finally:
        get_settings.cache_clear()
