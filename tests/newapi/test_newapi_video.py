"""`/v1/video/generations` through the real server on SQLite and PostgreSQL: every request
example of seeds 002 and 004 sent verbatim (image hosts moved to a local server), run to the end
on the sim channel and charged exactly once; then the seed 004 error shape for each refusal."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from newapi_env import FAILING_MODEL, NewApiEnv, newapi_env
from newapi_seeds import EXAMPLES, SEED_002_T2V, SeedExample, local

from llmage.domain.money import parse_amount
from llmage.domain.stored_files import StoredFile
from support.backends import BACKENDS

JOB_KEYS = {"id", "task_id", "object", "model", "status", "progress", "created_at"}
ERROR_KEYS = {"code", "message", "param", "type"}


@pytest.fixture(scope="module", params=BACKENDS)
def env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NewApiEnv]:
    with newapi_env(request.param, tmp_path_factory.mktemp(f"newapi-{request.param}")) as e:
        yield e


def error(r: httpx.Response, status: int, **expect: Any) -> dict[str, Any]:
    """Seed 004's error body: exactly {code, message, param, type} at the top level."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    assert set(body) == ERROR_KEYS, body
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["type"], str) and body["type"]
    for name, value in expect.items():
        assert body[name] == value, (name, body)
    return body


def submit_ok(env: NewApiEnv, key: str, body: Any, **headers: str) -> dict[str, Any]:
    r = env.submit(key, body, **headers)
    assert r.status_code == 200, r.text
    job: dict[str, Any] = r.json()
    assert set(job) == JOB_KEYS, job
    return job


# -- the seed examples ----------------------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_seed_example_runs_and_charges_once(env: NewApiEnv, example: SeedExample) -> None:
    acct = env.account("100")
    start, _ = env.balance(acct.user_id)
    text = local(example.body, env.web.base)
    requested = json.loads(text)["model"]

    job = submit_ok(env, acct.key, text)
    # Seed 002's reply, field for field.
    assert job["id"] == job["task_id"] and len(job["id"]) == 21
    assert job["object"] == "video.generation.job"
    assert job["model"] == requested
    assert job["status"] == "queued" and job["progress"] == 0
    assert isinstance(job["created_at"], int) and job["created_at"] > 1_700_000_000
    # The hold covers the quote while it runs.
    assert env.balance(acct.user_id)[1] in (example.price, 0)

    row = env.task(job["id"])
    assert (row.llmid, row.model, row.dialect) == (example.llmid, example.model, "newapi")
    assert row.quoted == example.price

    done = env.wait(acct.key, job["id"])
    assert done["status"] == "completed", done
    assert done["progress"] == 100 and done["error"] is None
    assert done["object"] == "video.generation.job" and done["task_id"] == job["id"]
    # The reseller alias reads back as sent; metadata.req_key (Jimeng) names what really ran.
    assert done["model"] == (example.model if "req_key" in text else requested)
    assert done["completed_at"] >= done["created_at"]
    assert done["url"] == done["video_url"] == done["metadata"]["url"]
    assert done["video_url"].startswith(env.url + "/media/")
    video = httpx.get(done["video_url"], timeout=30)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    cover = httpx.get(done["metadata"]["cover_url"], timeout=30)
    assert cover.status_code == 200 and cover.headers["content-type"].startswith("image/")
    assert parse_amount(done["usage"]["amount"]) == example.price
    assert done["usage"]["model"] == example.model
    # Charged exactly the price, once; nothing left on hold; the ledger reconciles.
    assert env.task(job["id"]).charged == example.price
    assert env.balance(acct.user_id) == (start - example.price, 0)
    assert env.reconcile() == []


def test_seed_images_were_fetched_through_the_guarded_fetcher(env: NewApiEnv) -> None:
    acct = env.account()
    before = len(env.web.fetched)
    job = submit_ok(env, acct.key, local(EXAMPLES[4].body, env.web.base))  # Kling: 2 images
    fetched = env.web.fetched[before:]
    assert any(p.startswith("/h2.inkwai.com/") for p in fetched), fetched
    assert any(p.startswith("/h1.inkwai.com/") for p in fetched), fetched
    assert env.wait(acct.key, job["id"])["status"] == "completed"


def test_metadata_callback_url_gets_the_signed_webhook(env: NewApiEnv) -> None:
    acct = env.account()
    job = submit_ok(env, acct.key, local(EXAMPLES[6].body, env.web.base))  # Vidu channel
    assert env.wait(acct.key, job["id"])["status"] == "completed"
    row = env.task(job["id"])
    assert row.callback_url == f"{env.web.base}/your-callback-url.com/webhook"
    deadline = time.monotonic() + 30
    while not (hits := [p for p in env.web.posted if job["id"].encode() in p[1]]):
        assert time.monotonic() < deadline, "no webhook"
        time.sleep(0.05)
    path, body, headers = hits[0]
    assert path == "/your-callback-url.com/webhook"
    assert json.loads(body)["status"] == "SUCCEEDED"
    assert headers["X-Llmage-Signature"].startswith("t=")


def test_failed_task_reads_failed_with_error_and_costs_nothing(env: NewApiEnv) -> None:
    acct = env.account()
    frames = {"image": f"{env.web.base}/x/a.png", "last_image": f"{env.web.base}/x/b.png"}
    job = submit_ok(env, acct.key, {"model": FAILING_MODEL, "prompt": "p", **frames})
    done = env.wait(acct.key, job["id"])
    assert done["status"] == "failed"
    assert done["error"] == {"code": "sim_failure", "message": "sim: injected generation failure"}
    assert done["video_url"] is None and done["url"] is None and done["usage"] is None
    assert done["metadata"] == {"url": None, "cover_url": None}
    assert env.balance(acct.user_id) == (100_000_000, 0)
    assert env.reconcile() == []


def test_multipart_submit_with_an_uploaded_first_frame(env: NewApiEnv) -> None:
    acct = env.account()
    r = httpx.post(
        env.url + "/v1/video/generations",
        headers={"Authorization": f"Bearer {acct.key}"},
        data={"model": "viduq3t-540p", "prompt": "p", "duration": "4",
              "extra_body": json.dumps({"seed": 1})},
        files={"image": ("frame.png", env.web.image, "image/png")},
        timeout=30,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    job = r.json()
    row = env.task(job["id"])
    assert row.params["duration"] == 4 and row.params["seed"] == 1
    first = row.inputs["image1_file"]
    assert isinstance(first, StoredFile) and first.content_type == "image/png"
    assert "image1_file" not in row.params
    assert env.wait(acct.key, job["id"])["status"] == "completed"


def test_a_native_task_reads_here_too(env: NewApiEnv) -> None:
    acct = env.account()
    r = httpx.post(
        env.url + "/llmage/video",
        headers={"Authorization": f"Bearer {acct.key}"},
        json={"llmid": "r0ill7L0s6PtBS8mkmg-7", "prompt": "p", "duration": 2,
              "resolution": "540p"},
        timeout=30,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    done = env.wait(acct.key, r.json()["taskid"])
    assert done["status"] == "completed" and done["model"] == "viduq3-pro"
    assert done["usage"]["duration"] == 2


# -- idempotency and ownership ----------------------------------------------------------------


def test_idempotency_key_one_task_one_charge(env: NewApiEnv) -> None:
    acct = env.account()
    first = submit_ok(env, acct.key, SEED_002_T2V, **{"Idempotency-Key": "seed-002-t2v"})
    again = submit_ok(env, acct.key, SEED_002_T2V, **{"Idempotency-Key": "seed-002-t2v"})
    assert again["id"] == first["id"]
    other = json.loads(SEED_002_T2V) | {"duration": 6}
    r = env.submit(acct.key, other, **{"Idempotency-Key": "seed-002-t2v"})
    error(r, 409, param="Idempotency-Key")
    assert env.wait(acct.key, first["id"])["status"] == "completed"
    assert env.balance(acct.user_id) == (100_000_000 - 3_000_000, 0)
    assert env.reconcile() == []


def test_another_users_task_is_404(env: NewApiEnv) -> None:
    owner, other = env.account(), env.account()
    job = submit_ok(env, owner.key, SEED_002_T2V)
    error(env.job(other.key, job["id"]), 404, param="task_id", type="invalid_request_error")
    error(env.job(owner.key, "no-such-task"), 404, param="task_id")
    assert env.job(owner.key, job["id"]).status_code == 200
    env.wait(owner.key, job["id"])


# -- errors -----------------------------------------------------------------------------------


def test_401_in_seed_004_shape(env: NewApiEnv) -> None:
    error(env.submit(None, SEED_002_T2V), 401, type="authentication_error")
    error(env.submit("sk-not-a-key", SEED_002_T2V), 401, code="invalid_api_key")
    error(env.job("sk-not-a-key", "whatever"), 401)


def test_missing_prompt(env: NewApiEnv) -> None:
    acct = env.account()
    body = {k: v for k, v in json.loads(SEED_002_T2V).items() if k != "prompt"}
    err = error(env.submit(acct.key, body), 400, param="prompt", type="invalid_request_error")
    assert err["code"] == "missing_required_parameter"
    assert "prompt" in err["message"]


@pytest.mark.parametrize(
    ("model", "duration", "allowed"),
    [("viduq3p-720p", 20, "between 1 and 16"), ("kling-v1", "7", "5, 10"), ("viduq1", 8, "5")],
)
def test_bad_duration_names_the_allowed_values(
    env: NewApiEnv, model: str, duration: object, allowed: str
) -> None:
    acct = env.account()
    r = env.submit(acct.key, {"model": model, "prompt": "p", "duration": duration})
    err = error(r, 400, param="duration", code="invalid_value")
    assert allowed in err["message"], err


def test_unknown_model_lists_the_video_models(env: NewApiEnv) -> None:
    acct = env.account()
    err = error(env.submit(acct.key, {"model": "sora-9", "prompt": "p"}), 404, param="model")
    assert err["code"] == "model_not_found"
    for name in ("viduq3p-720p", "viduq3t-540p-offpeak", "viduq3p-mix-720p", "kling-v1"):
        assert name in err["message"]
    assert "jimeng_vgfm_t2v_l20" in err["message"] and "viduq1" in err["message"]
    # A chat model is not a video model.
    error(env.submit(acct.key, {"model": "qwen3-max", "prompt": "p"}), 404, param="model")


def test_last_image_without_image(env: NewApiEnv) -> None:
    acct = env.account()
    body = {"model": "viduq3p-720p", "prompt": "p", "last_image": f"{env.web.base}/x/tail.png"}
    err = error(env.submit(acct.key, body), 400, param="last_image")
    assert "image" in err["message"]
    body = {"model": "kling-v1", "prompt": "p", "metadata": {"image_tail": body["last_image"]}}
    error(env.submit(acct.key, body), 400, param="metadata.image_tail")


@pytest.mark.parametrize(
    ("body", "param", "status"),
    [
        ({"model": "viduq3p-720p"}, "prompt", 400),
        ({"prompt": "p"}, "model", 400),
        # reference images only for the mix models
        ({"model": "viduq3p-720p", "prompt": "p", "reference_image_urls": ["IMG"]},
         "reference_image_urls", 400),
        # a mix model needs them
        ({"model": "viduq3p-mix-720p", "prompt": "p"}, "reference_image_urls", 400),
        ({"model": "viduq3p-mix-720p", "prompt": "p", "image": "IMG"}, "image", 400),
        # n > 1: one video per request
        ({"model": "viduq1", "prompt": "p", "n": 2}, "n", 400),
        # an alias fixes its resolution and off-peak setting
        ({"model": "viduq3p-720p", "prompt": "p", "metadata": {"resolution": "1080p"}},
         "resolution", 400),
        ({"model": "viduq3t-540p-offpeak", "prompt": "p", "extra_body": {"off_peak": False}},
         "off_peak", 400),
        ({"model": "viduq3p-720p", "prompt": "p", "aspect_ratio": "21:9"}, "aspect_ratio", 400),
        ({"model": "kling-v1", "prompt": "p", "size": "big"}, "size", 400),
        ({"model": "viduq3p-720p", "prompt": "p", "duration": 5, "metadata": {"duration": 6}},
         "metadata.duration", 400),
        ({"model": "jimeng_vgfm_t2v_l20", "prompt": "p", "image": "IMG"}, "image", 400),
        ({"model": "viduq1", "prompt": "p", "metadata": {"callback_url": "ftp://x"}},
         "metadata.callback_url", 400),
        ({"model": "viduq1", "prompt": "p", "metadata": "nope"}, "metadata", 400),
    ],
)  # fmt: skip
def test_refusals(env: NewApiEnv, body: dict[str, Any], param: str, status: int) -> None:
    acct = env.account()
    text = json.dumps(body).replace('"IMG"', json.dumps(f"{env.web.base}/x/a.png"))
    error(env.submit(acct.key, text), status, param=param)
    assert env.balance(acct.user_id) == (100_000_000, 0)


def test_private_image_url_is_refused_by_the_fetcher(env: NewApiEnv) -> None:
    acct = env.account()
    body = {"model": "viduq3t-540p", "prompt": "p", "image": "http://169.254.169.254/latest"}
    error(env.submit(acct.key, body), 400, param="image", code="invalid_value")
    assert env.balance(acct.user_id) == (100_000_000, 0)


def test_bad_json_and_insufficient_balance(env: NewApiEnv) -> None:
    acct = env.account("1")
    error(env.submit(acct.key, "{not json"), 400, type="invalid_request_error")
    r = env.submit(acct.key, SEED_002_T2V)  # 3 CNY on a 1 CNY balance
    error(r, 429, code="insufficient_quota")
    assert env.balance(acct.user_id) == (1_000_000, 0)
