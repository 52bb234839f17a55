"""A fake Jimeng upstream (PROVIDERS.md §7) on the shared framework.

Auth as the Volcengine OpenAPI gateway checks it: `Authorization: HMAC-SHA256 Credential=<AK>/
<date>/cn-north-1/cv/request, SignedHeaders=..., Signature=...`, recomputed here over whatever
SignedHeaders lists; `X-Content-Sha256` must be the body's hash and `X-Date` within 15 minutes of
the fake's clock. Refusals use the gateway's `ResponseMetadata.Error` shape
(`SignatureDoesNotMatch`, `InvalidTimestamp`, `FeatNotFound` for an unknown req_key).

`POST /?Action=CVSync2AsyncSubmitTask&Version=2022-08-31`: `req_key` known, `aspect_ratio` never
empty, `frames` in {121, 241} on 3.0 keys, images only (and exactly as many as) the image modes
take. `...CVSync2AsyncGetResult...` with `{req_key, task_id}`: the req_key must be the submit's
(else 50215). Tasks play in_queue → generating → done one step per poll; `done` carries a
`video_url` that expires with `expire_files()` (or `resp_data` when `legacy_result`); a failed
task is `done` with a non-10000 code; a gone one `not_found`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote_plus

from aiohttp import web

from support.fakes import FakeTask, FakeUpstream, tiny_mp4

T2V = ("jimeng_vgfm_t2v_l20", "jimeng_t2v_v30", "jimeng_t2v_v30_1080p")
I2V = (
    "jimeng_vgfm_i2v_l20",
    "jimeng_i2v_first_v30",
    "jimeng_i2v_first_v30_1080",
    "jimeng_ti2v_v30_pro",
)
FIRST_TAIL = ("jimeng_i2v_first_tail_v30", "jimeng_i2v_first_tail_v30_1080")
RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")
WINDOW_S = 15 * 60


def answer(code: int, message: str, data: Any = None, status: int = 200) -> web.Response:
    body = {"code": code, "message": message, "request_id": "req-fake", "status": code,
            "time_elapsed": "1ms", "data": data}  # fmt: skip
    return web.json_response(body, status=status)


def gateway_error(code: str, message: str, status: int) -> web.Response:
    meta = {"RequestId": "req-fake", "Action": "", "Version": "2022-08-31", "Service": "cv",
            "Region": "cn-north-1", "Error": {"Code": code, "Message": message}}  # fmt: skip
    return web.json_response({"ResponseMetadata": meta}, status=status)


def _enc(text: str) -> str:
    return quote(text, safe="-_.~")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class JimengFake(FakeUpstream):
    access_key = "AKLTjimengfake0123"
    secret_key = "jimeng-fake-secret-4567"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.clock = clock
        self.legacy_result = False  # answer `resp_data` (older S2.0) instead of `video_url`
        self.failure_code = 50500  # the code a failing lifecycle's `done` carries

    # -- auth -----------------------------------------------------------------------------------

    def check_auth(self, request: web.Request, body: bytes) -> web.StreamResponse | None:
        header = request.headers.get("Authorization", "")
        fields: dict[str, str] = {}
        algo, _, rest = header.partition(" ")
        for part in rest.split(","):
            key, _, value = part.strip().partition("=")
            fields[key] = value
        cred = fields.get("Credential", "").split("/")
        signed = fields.get("SignedHeaders", "")
        if algo != "HMAC-SHA256" or len(cred) != 5 or not signed or "Signature" not in fields:
            return gateway_error("MissingAuthenticationToken", "no valid Authorization", 401)
        ak, date, region, service, terminal = cred
        if ak != self.access_key:
            return gateway_error("InvalidAccessKey", "the access key is unknown", 401)
        x_date = request.headers.get("X-Date", "")
        try:
            when = datetime.strptime(x_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            return gateway_error("InvalidTimestamp", "X-Date is malformed", 401)
        if abs(when - self.clock()) > WINDOW_S or date != x_date[:8]:
            return gateway_error("InvalidTimestamp", "X-Date is outside the window", 401)
        if request.headers.get("X-Content-Sha256") != hashlib.sha256(body).hexdigest():
            return gateway_error("SignatureDoesNotMatch", "X-Content-Sha256 mismatch", 401)
        names = signed.split(";")
        block = "".join(f"{n}:{request.headers.get(n, '').strip()}\n" for n in names)
        pairs = sorted(
            (_enc(unquote_plus(k)), _enc(unquote_plus(v)))
            for k, _, v in (p.partition("=") for p in request.query_string.split("&") if p)
        )
        canonical = "\n".join(
            [request.method, request.path, "&".join(f"{k}={v}" for k, v in pairs), block,
             signed, hashlib.sha256(body).hexdigest()]
        )  # fmt: skip
        scope = f"{date}/{region}/{service}/{terminal}"
        to_sign = "\n".join(
            ["HMAC-SHA256", x_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = _hmac(self.secret_key.encode(), date)
        for step in (region, service, terminal):
            key = _hmac(key, step)
        want = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        required = {"host", "x-date", "x-content-sha256"}
        if not required <= set(names) or not hmac.compare_digest(want, fields["Signature"]):
            return gateway_error("SignatureDoesNotMatch", "the signature does not match", 401)
        return None

    # -- routes ---------------------------------------------------------------------------------

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/", self._dispatch)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("Version") != "2022-08-31":
            return gateway_error("InvalidActionOrVersion", "unknown version", 404)
        action = request.query.get("Action")
        if action == "CVSync2AsyncSubmitTask":
            return await self._submit(request)
        if action == "CVSync2AsyncGetResult":
            return await self._query(request)
        return gateway_error("InvalidActionOrVersion", f"unknown action {action}", 404)

    def _refuse(self, body: Any) -> web.Response | None:
        if not isinstance(body, dict):
            return answer(50215, "Invalid Input: body must be an object", status=400)
        key = body.get("req_key")
        if key not in T2V + I2V + FIRST_TAIL:
            return gateway_error("FeatNotFound", f"req_key {key} not found", 400)
        if not isinstance(body.get("prompt", ""), str):
            return answer(50215, "Invalid Input: prompt", status=400)
        if "aspect_ratio" in body and body["aspect_ratio"] not in RATIOS:
            return answer(50215, "Invalid Input: aspect_ratio", status=400)
        if key in T2V and "aspect_ratio" not in body and "v30" in key:
            return answer(50215, "Invalid Input: aspect_ratio is required", status=400)
        if "v30" in key and body.get("frames", 121) not in (121, 241):
            return answer(50215, "Invalid Input: frames must be 121 or 241", status=400)
        images = body.get("image_urls") or body.get("binary_data_base64") or []
        want = 0 if key in T2V else 2 if key in FIRST_TAIL else 1
        if not isinstance(images, list) or len(images) != want:
            return answer(50215, f"Invalid Input: {want} image(s) expected", status=400)
        for url in body.get("image_urls") or []:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                return answer(50215, "Invalid Input: image_urls", status=400)
        return None

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        raw, denied = await self.guard(request, "create")
        if denied is not None:
            return denied
        try:
            body = json.loads(raw)
        except ValueError:
            return answer(50215, "Invalid Input: not JSON", status=400)
        refused = self._refuse(body)
        if refused is not None:
            return refused
        task = self.new_task(body, prefix="jm")
        await self.created()
        return answer(10000, "Success", {"task_id": task.id})

    async def _query(self, request: web.Request) -> web.StreamResponse:
        raw, denied = await self.guard(request, "poll")
        if denied is not None:
            return denied
        body = json.loads(raw)
        task = self.tasks.get(str(body.get("task_id")))
        if task is None or task.state == "gone":
            return answer(10000, "Success", {"status": "not_found"})
        if body.get("req_key") != task.body["req_key"]:
            return answer(50215, "Invalid Input: req_key does not match the task", status=400)
        return self._render(task, self.step(task))

    def _render(self, task: FakeTask, state: str) -> web.Response:
        if state == "queued":
            return answer(10000, "Success", {"status": "in_queue"})
        if state == "running":
            return answer(10000, "Success", {"status": "generating"})
        if state == "failed":
            return answer(self.failure_code, task.lifecycle.error_message, {"status": "done"})
        if state == "output_moderation":
            code = int(task.lifecycle.error_code)
            return answer(code, task.lifecycle.error_message, {"status": "done"})
        if state == "gone":
            return answer(10000, "Success", {"status": "not_found"})
        if "url" not in task.result:
            task.result["url"] = self.publish(tiny_mp4(), "video/mp4")
        url = task.result["url"]
        if self.legacy_result:
            data = {"status": "done", "resp_data": json.dumps({"urls": [url]})}
        else:
            data = {"status": "done", "video_url": url}
        return answer(10000, "Success", data)
