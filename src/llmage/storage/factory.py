"""Build the configured storage from settings."""

from __future__ import annotations

from llmage.settings import Settings
from llmage.storage.contract import Storage
from llmage.storage.local import LocalStorage
from llmage.storage.s3 import S3Storage


def make_storage(settings: Settings) -> Storage:
    backend = settings.storage_backend.strip().lower()
    if backend == "local":
        return LocalStorage(settings.data_dir / "media")
    if backend == "s3":
        endpoint, bucket = settings.s3_endpoint, settings.s3_bucket
        access_key, secret_key = settings.s3_access_key, settings.s3_secret_key
        if not (endpoint and bucket and access_key and secret_key):
            missing = [
                name
                for name in ("s3_endpoint", "s3_bucket", "s3_access_key", "s3_secret_key")
                if not getattr(settings, name)
            ]
            # Names the settings, never their values.
            raise ValueError(f"storage_backend=s3 needs {', '.join(missing)}")
        return S3Storage(endpoint, bucket, access_key, secret_key, settings.s3_region)
    raise ValueError(f"unknown storage_backend {settings.storage_backend!r} (local or s3)")
