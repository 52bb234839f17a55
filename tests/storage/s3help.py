"""A real S3-protocol server for tests (moto, in-process on loopback) with IAM authentication
switched on, so moto recomputes and checks every SigV4 signature we send. Imported by name:
this folder is on sys.path."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.authorization import enable_iam_authentication
from moto.iam.models import iam_backends
from moto.server import ThreadedMotoServer

from llmage.storage.s3 import S3Storage


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str

    def storage(
        self, bucket: str, *, secret: str | None = None, access: str | None = None
    ) -> S3Storage:
        return S3Storage(
            self.endpoint, bucket, access or self.access_key, secret or self.secret_key, "us-east-1"
        )


@contextlib.contextmanager
def moto_s3() -> Iterator[S3Server]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    iam = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    user = "llmage-" + secrets.token_hex(4)
    iam.create_user("us-east-1", user)
    iam.put_user_policy(
        user,
        "s3-all",
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(user)
    try:
        # From here on moto checks each request's signature against this user's secret.
        with enable_iam_authentication():
            yield S3Server(f"http://{host}:{port}", key.access_key_id, key.secret_access_key)
    finally:
        server.stop()
