"""MediaService and MediaLinks on local storage: files are recorded as their bytes say, a file
slot takes only what a dialect made of a client's file, and links come only from StoredFile."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from llmage.domain.errors import InvalidParameter
from llmage.domain.params import ParamSpec
from llmage.domain.stored_files import StoredFile
from llmage.domain.tasks import MediaSource
from llmage.net.fetch import GuardedFetcher
from llmage.services.media import MediaService
from llmage.services.media_links import MediaLinks
from llmage.storage.local import LocalStorage

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 40
POLYGLOT = PNG + b"<html><script>alert(1)</script></html>"
SPECS = (
    ParamSpec("prompt", "string"),
    ParamSpec("image1_file", "image"),
    ParamSpec("image_files", "images", max_items=3),
)


@pytest.fixture
def media(tmp_path: Path) -> MediaService:
    storage = LocalStorage(tmp_path)
    links = MediaLinks(storage, os.urandom(32), 600)
    return MediaService(storage, GuardedFetcher(1 << 20, 5.0), links, 1 << 20)


async def test_inputs_are_recorded_as_their_bytes_say(media: MediaService) -> None:
    params: dict[str, Any] = {
        "prompt": "p",
        "image1_file": MediaSource(data=POLYGLOT, content_type="text/html"),
        "image_files": [MediaSource(data=PNG, content_type="application/x-evil")],
        "extra": {"key": "sha256/ab/x.png", "content_type": "text/html"},
    }
    plain, files = await media.materialize(SPECS, params)
    assert plain == {"prompt": "p", "extra": params["extra"]}  # a plain value, left alone
    first, many = files["image1_file"], files["image_files"]
    assert isinstance(first, StoredFile) and first.content_type == "image/png"
    assert first.key.endswith(".png")
    assert isinstance(many, tuple) and [f.content_type for f in many] == ["image/png"]
    assert await media.read_all(first) == POLYGLOT


@pytest.mark.parametrize(
    "value",
    [
        {"key": "sha256/ab/" + "c" * 62 + ".png", "content_type": "text/html"},
        [{"key": "sha256/ab/" + "c" * 62 + ".png", "content_type": "image/png"}],
        "sha256/ab/" + "c" * 62 + ".png",
        [MediaSource(data=PNG), "not a file"],
    ],
)
async def test_a_file_slot_takes_only_client_files(media: MediaService, value: Any) -> None:
    with pytest.raises(InvalidParameter) as info:
        await media.materialize(SPECS, {"prompt": "p", "image_files": value})
    assert info.value.param == "image_files"


async def test_a_non_image_in_an_image_slot_is_refused(media: MediaService) -> None:
    html = MediaSource(data=b"<!doctype html><script>1</script>", content_type="image/png")
    with pytest.raises(InvalidParameter) as info:
        await media.materialize(SPECS, {"image1_file": html})
    assert info.value.param == "image1_file" and "application/octet-stream" in str(info.value)


async def test_links_only_from_stored_files(media: MediaService) -> None:
    _, files = await media.materialize(SPECS, {"image1_file": MediaSource(data=POLYGLOT)})
    first = files["image1_file"]
    assert isinstance(first, StoredFile)
    url = media.url(first, "https://gw.example/", "frame")
    assert url.startswith("https://gw.example/media/") and first.key not in url
    forged: Any = {"key": first.key, "content_type": "text/html"}
    with pytest.raises(TypeError):
        media.url(forged, "https://gw.example", "frame")
    served = await media.links.open(url.rsplit("/", 1)[1])
    assert served is not None
    assert (served.content_type, served.inline, served.filename) == ("image/png", True, "frame.png")
    assert await media.links.open(url.rsplit("/", 1)[1][:-2] + "AA") is None


async def test_served_type_comes_from_the_bytes_not_the_record(media: MediaService) -> None:
    # A record whose key and type claim PNG but whose bytes are HTML (as an old upstream-declared
    # record could be): served as an octet-stream attachment.
    stored = await media.storage.put(b"<html><script>alert(1)</script></html>", "image/png")
    assert stored.key.endswith(".png") and stored.content_type == "image/png"
    token = media.links.token(stored, "result")
    served = await media.links.open(token)
    assert served is not None
    assert (served.content_type, served.inline, served.filename) == (
        "application/octet-stream",
        False,
        "result.bin",
    )
