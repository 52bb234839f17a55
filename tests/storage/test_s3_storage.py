"""S3Storage against a real S3-protocol server (moto, in-process on loopback) with IAM
authentication switched on, so moto recomputes and checks every SigV4 signature we send; plus
the AWS-documented SigV4 example vectors, hard-coded."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
from collections.abc import Iterator

import pytest
from s3help import S3Server, moto_s3

from llmage.storage.s3 import EMPTY_SHA256, S3Error, S3Storage, sign_v4

# --- AWS documentation vectors ("Signature Calculations for the Authorization Header:
# Transferring Payload in a Single Chunk", Amazon S3 API reference), all signed on 2013-05-24.

AWS_ACCESS = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_HOST = "examplebucket.s3.amazonaws.com"
AWS_NOW = dt.datetime(2013, 5, 24, tzinfo=dt.UTC)


def aws_example(
    method: str, path: str, query: dict[str, str], headers: dict[str, str], payload: bytes = b""
) -> dict[str, str]:
    return sign_v4(
        method=method,
        path=path,
        query=query,
        headers={"Host": AWS_HOST, **headers},
        payload_hash=hashlib.sha256(payload).hexdigest(),
        access_key=AWS_ACCESS,
        secret_key=AWS_SECRET,
        region="us-east-1",
        now=AWS_NOW,
    )


def test_sigv4_get_object_example() -> None:
    signed = aws_example("GET", "/test.txt", {}, {"Range": "bytes=0-9"})
    assert signed["x-amz-content-sha256"] == EMPTY_SHA256
    assert signed["x-amz-date"] == "20130524T000000Z"
    assert signed["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "payload", "signature"),
    [
        (
            "PUT",
            "/test$file.text",
            {},
            {"Date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY"},
            b"Welcome to Amazon S3.",
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        ),
        (
            "GET",
            "/",
            {"lifecycle": ""},
            {},
            b"",
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
        ),
        (
            "GET",
            "/",
            {"max-keys": "2", "prefix": "J"},
            {},
            b"",
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
        ),
    ],
)
def test_sigv4_other_documented_examples(
    method: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    payload: bytes,
    signature: str,
) -> None:
    signed = aws_example(method, path, query, headers, payload)
    assert signed["Authorization"].endswith(f"Signature={signature}")


# --- Against moto ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    with moto_s3() as server:
        yield server


@pytest.fixture
async def bucket(s3_server: S3Server) -> str:
    name = "media-" + secrets.token_hex(4)
    storage = s3_server.storage(name)
    try:
        await storage.ensure_bucket()
        await storage.ensure_bucket()  # idempotent
    finally:
        await storage.close()
    return name


async def test_put_get_range_head_delete(s3_server: S3Server, bucket: str) -> None:
    storage = s3_server.storage(bucket)
    data = os.urandom(300_000) + b"tail"
    try:
        obj = await storage.put(data, "video/mp4")
        digest = hashlib.sha256(data).hexdigest()
        assert obj.key == f"sha256/{digest[:2]}/{digest[2:]}.mp4"
        assert (obj.size, obj.sha256) == (len(data), digest)
        assert await storage.size(obj.key) == len(data)
        assert await storage.read_all(obj.key) == data

        async def part(start: int, end: int | None = None) -> bytes:
            return b"".join([c async for c in storage.read(obj.key, start, end)])

        assert await part(0, 9) == data[:10]
        assert await part(1000, 1999) == data[1000:2000]
        assert await part(len(data) - 4) == b"tail"
        assert await part(10, 10**9) == data[10:]
        assert await part(len(data)) == b""  # past the end: nothing, like LocalStorage

        empty = await storage.put(b"", "text/plain")
        assert await storage.size(empty.key) == 0
        assert await storage.read_all(empty.key) == b""

        await storage.delete(obj.key)
        assert await storage.size(obj.key) is None
        with pytest.raises(FileNotFoundError):
            await storage.read_all(obj.key)
        await storage.delete(obj.key)  # deleting a missing object is fine
    finally:
        await storage.close()


async def test_keys_with_special_characters_are_refused(s3_server: S3Server, bucket: str) -> None:
    storage = s3_server.storage(bucket)
    try:
        with pytest.raises(ValueError):
            await storage.size("../other-bucket/x")
    finally:
        await storage.close()


async def test_wrong_secret_is_refused(s3_server: S3Server, bucket: str) -> None:
    wrong = "not-the-secret-" + secrets.token_hex(8)
    storage = s3_server.storage(bucket, secret=wrong)
    try:
        with pytest.raises(S3Error) as info:
            await storage.put(b"hello", "text/plain")
        assert info.value.status == 403
        assert info.value.code == "SignatureDoesNotMatch"
        assert wrong not in str(info.value)
        assert s3_server.secret_key not in str(info.value)
        with pytest.raises(S3Error):
            await storage.size("sha256/ab/" + "0" * 62 + ".txt")
    finally:
        await storage.close()


async def test_unknown_access_key_is_refused(s3_server: S3Server, bucket: str) -> None:
    storage = s3_server.storage(bucket, access="AKIA" + "Z" * 16)
    try:
        with pytest.raises(S3Error) as info:
            await storage.put(b"hello", "text/plain")
        assert info.value.status == 403
        assert info.value.code == "InvalidAccessKeyId"
    finally:
        await storage.close()


async def test_unreachable_endpoint_is_an_s3_error() -> None:
    storage = S3Storage("http://127.0.0.1:9", "media", "AKIAX", "secret", connect_timeout=2)
    try:
        with pytest.raises(S3Error, match="unreachable"):
            await storage.size("sha256/ab/" + "0" * 62 + ".txt")
    finally:
        await storage.close()
