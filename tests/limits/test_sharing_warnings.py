"""An instance on a shared PostgreSQL database with local media storage, or without a shared
secret key, says at start what other instances will not be able to do."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from conftest import make_settings
from llmage.services.platform import Platform

PG = "postgresql+asyncpg://nobody@127.0.0.1:1/none"  # never connected to here


def warnings_for(tmp: Path, caplog: pytest.LogCaptureFixture, **overrides: object) -> str:
    platform = Platform(make_settings(tmp, PG).model_copy(update=overrides))
    with caplog.at_level(logging.WARNING, logger="llmage.services.platform"):
        platform._warn_about_sharing()
    return caplog.text


def test_local_storage_on_postgres_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = warnings_for(tmp_path, caplog)
    assert "media storage is local" in text and "LLMAGE_STORAGE_BACKEND=s3" in text
    assert "LLMAGE_SECRET_KEY is not set" not in text  # make_settings gives one


def test_no_shared_secret_key_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = warnings_for(
        tmp_path,
        caplog,
        secret_key=None,
        storage_backend="s3",
        s3_endpoint="http://127.0.0.1:1",
        s3_bucket="media-bucket",
        s3_access_key="a",
        s3_secret_key="s",
    )
    assert "give every instance the same LLMAGE_SECRET_KEY" in text
    assert "media storage is local" not in text


def test_sqlite_is_quiet(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    platform = Platform(make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"))
    with caplog.at_level(logging.WARNING):
        platform._warn_about_sharing()
    assert caplog.text == ""
