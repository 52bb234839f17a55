"""Every operation's success answer, on real finished work, matches what /openapi.json declares.

Schemathesis (test_openapi_contract.py) rarely guesses a valid task id, so the answers about
finished tasks — completed videos with their `detail`, image tasks with their images, native
views with signed links, new-api jobs, the media bytes themselves — are produced here on
purpose: one demo-like server with a fast sim, each operation called once the way a client
would, each 2xx answer validated against its operation, and every operation covered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from cryptography.fernet import Fernet

from llmage.app import create_app
from llmage.cli.demo import prepare_demo
from llmage.domain.money import MICROS_PER_UNIT
from llmage.services.platform import Platform
from llmage.settings import Settings
from support.servers import LlmageServer, LoopThread

KEY = "sk-openapi-responses-0123456789abcdef01234567"
SD15_T2V = "CrEMkFQfRCmbmopZsCqLj"  # doubao-seedance-1-5-pro-251215 (seed 000)
VIDEO = {"prompt": "a cat", "duration": 4, "resolution": "480p", "ratio": "16:9"}


class Checked:
    """An API client that validates each 2xx answer against its operation and remembers it."""

    def __init__(self, url: str, spec: dict[str, Any]) -> None:
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
        )
        self.schema = schemathesis.openapi.from_dict(spec)
        self.operations = {
            (method.upper(), path)
            for path, ops in spec["paths"].items()
            for method in ops
            # The console's cookie-session API (/api/) answers in its own suites.
            if method in ("get", "post", "delete", "head") and not path.startswith("/api/")
        }
        self.covered: set[tuple[str, str]] = set()

    def call(
        self, method: str, template: str, path: str | None = None, **kw: Any
    ) -> httpx.Response:
        r = self.http.request(method, path or template, **kw)
        assert r.status_code in (200, 206), (method, path or template, r.status_code, r.text[:300])
        self.schema[template][method].validate_response(r)
        self.covered.add((method, template))
        return r

    def until(
        self, template: str, path: str, done: Callable[[dict[str, Any]], bool], **kw: Any
    ) -> dict[str, Any]:
        """GET `path` until `done(body)`: the poller finishes sim jobs in well under a second;
        the generous bound only stops a broken run."""
        deadline = time.monotonic() + 120
        while True:
            body: dict[str, Any] = self.call("GET", template, path, **kw).json()
            if done(body):
                return body
            assert time.monotonic() < deadline, body
            time.sleep(0.1)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checked]:
    tmp = tmp_path_factory.mktemp("openapi-responses")
    settings = Settings(
        data_dir=tmp,
        database_url=f"sqlite+aiosqlite:///{tmp / 'llmage.db'}",
        secret_key=Fernet.generate_key().decode(),
        log_json=False,
        demo_key=KEY,
        sim_task_latency_ms=0,
        task_poll_interval_ms=50,
        task_idle_poll_seconds=0.05,
    )
    app = create_app(settings)
    server = LlmageServer(app)
    admin = LoopThread("openapi-responses-admin")
    platform = Platform(settings)
    try:
        admin.call(platform.start(migrate=False))
        assert admin.call(prepare_demo(platform)) == KEY
        user = admin.call(platform.accounts.user_by_name("demo"))
        assert user is not None
        admin.call(platform.ledger.credit(user.id, 1000 * MICROS_PER_UNIT, "openapi:funds"))
        client = Checked(server.url, app.openapi())
        yield client
        client.http.close()
    finally:
        server.stop()
        admin.call(platform.close())
        admin.stop()


def completed(body: dict[str, Any]) -> bool:
    return body["status"] in ("completed", "failed", "SUCCEEDED", "FAILED")


def test_chat_and_models(api: Checked) -> None:
    chat = {"model": "qwen3-max", "messages": [{"role": "user", "content": "hi"}]}
    native = {"model": "qwen3-max", "prompt": "hi"}
    for stream in (False, True):
        api.call("POST", "/v1/chat/completions", json={**chat, "stream": stream})
        api.call(
            "POST", "/{platform}/v1/chat/completions", "/sim/v1/chat/completions",
            json={**chat, "stream": stream},
        )  # fmt: skip
        api.call("POST", "/llmage/v1/chat/completions", json={**native, "stream": stream})
        api.call("POST", "/llmage/t2t", json={**native, "stream": stream})
    api.call("GET", "/v1/models")
    api.call("GET", "/llmage/models")
    api.call("GET", "/healthz")
    api.call("GET", "/metrics")


def test_native_tasks(api: Checked) -> None:
    body = {"llmid": SD15_T2V, **VIDEO}
    api.call("POST", "/llmage/estimate", json=body)
    taskid = api.call("POST", "/llmage/video", json=body).json()["taskid"]
    view = api.until("/llmage/tasks", "/llmage/tasks", completed, params={"taskid": taskid})
    assert view["status"] == "SUCCEEDED", view
    api.call("POST", "/llmage/tasks", json={"taskid": taskid})
    # The signed links of a finished task: the media route itself.
    media = "/media/" + view["video"].split("/media/", 1)[1]
    api.call("GET", "/media/{token}", media)
    api.call("GET", "/media/{token}", media, headers={"Range": "bytes=0-99"})
    api.call("HEAD", "/media/{token}", media)
    # Cancelling a finished task changes nothing and answers the view.
    api.call("POST", "/llmage/tasks/cancel", params={"taskid": taskid})
    api.call("DELETE", "/llmage/tasks/cancel", params={"taskid": taskid})


@pytest.mark.parametrize("prefix", ["", "/{platform}"])
def test_openai_videos(api: Checked, prefix: str) -> None:
    def path(template: str) -> str:
        return template.replace("{platform}", "sim")

    base = prefix + "/v1/videos"
    create = {"model": "doubao-seedance-1-5-pro-251215", "prompt": "a cat", "seconds": "4"}
    video = api.call("POST", base, path(base), json={**create, "size": "864x480"}).json()
    one = f"{base}/{{{'task_id' if prefix else 'video_id'}}}"
    done = api.until(one, path(f"{base}/{video['id']}"), completed, params={"detail": "true"})
    assert done["status"] == "completed", done
    api.call("GET", base, path(base), params={"limit": 5, "order": "asc"})
    api.call("GET", one + "/content", path(f"{base}/{video['id']}/content"))
    api.call(
        "GET", one + "/content", path(f"{base}/{video['id']}/content"),
        params={"variant": "thumbnail"},
    )  # fmt: skip
    remix = api.call(
        "POST", one + "/remix", path(f"{base}/{video['id']}/remix"), json={"prompt": "a dog"}
    ).json()
    api.call("DELETE", one, path(f"{base}/{remix['id']}"))


@pytest.mark.parametrize("prefix", ["", "/{platform}"])
def test_openai_images(api: Checked, prefix: str) -> None:
    def path(template: str) -> str:
        return template.replace("{platform}", "sim")

    gen, edit = prefix + "/v1/images/generations", prefix + "/v1/images/edits"
    body = {"model": "qwen-image", "prompt": "a lighthouse", "size": "1328*1328"}
    api.call("POST", gen, path(gen), json={**body, "response_format": "url"})
    api.call("POST", gen, path(gen), json=body)  # b64_json (a data URI on the platform route)
    image = api.call("POST", gen, path(gen), json=body, params={"async": "true"}).json()
    one = prefix + "/v1/images/{task_id}"
    done = api.until(
        one, path(f"{prefix}/v1/images/{image['id']}"), completed, params={"detail": "true"}
    )
    assert done["status"] == "completed", done
    edit_body = {
        "model": "doubao-seedream-4-0-250828",  # an image-to-image model
        "prompt": "bluer",
        "image": done["data"][0]["b64_json"],
    }
    api.call("POST", edit, path(edit), json=edit_body, params={"async": "true"})


def test_newapi_jobs(api: Checked) -> None:
    body = {"model": "doubao-seedance-1-5-pro-251215", "prompt": "a cat", "duration": 4}
    job = api.call("POST", "/v1/video/generations", json=body).json()
    done = api.until(
        "/v1/video/generations/{task_id}", f"/v1/video/generations/{job['id']}", completed
    )
    assert done["status"] == "completed", done


def test_every_operation_was_answered(api: Checked) -> None:
    """Runs last in this module: each operation above has had a validated success answer."""
    assert api.operations - api.covered == set()


def test_a_wrong_answer_is_caught(api: Checked) -> None:
    """The validation itself bites: a body missing a declared field fails it."""
    fake = httpx.Response(
        200, json={"object": "list"}, request=httpx.Request("GET", "http://llmage.test/v1/models")
    )
    fake.elapsed = timedelta(0)
    with pytest.raises(AssertionError):
        api.schema["/v1/models"]["GET"].validate_response(fake)
