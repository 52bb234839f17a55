"""Channel credentials at rest: Fernet (AES-128-CBC + HMAC) under the deployment's secret key."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


class CredentialBox:
    def __init__(self, key: str | bytes) -> None:
        self._fernet = Fernet(key)
        self._key = key.encode() if isinstance(key, str) else key

    def derive(self, purpose: str) -> bytes:
        """A separate secret per purpose (media URLs, webhooks) from the one deployment key."""
        return hmac.new(self._key, f"llmage:{purpose}".encode(), hashlib.sha256).digest()

    @classmethod
    def from_settings(cls, secret_key: str | None, data_dir: Path) -> CredentialBox:
        if secret_key:
            return cls(secret_key)
        # No key configured: create one beside the data, readable by its owner only.
        path = data_dir / "secret.key"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process created it first: use theirs
            else:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(Fernet.generate_key())
        for _ in range(50):
            key = path.read_bytes().strip()
            if key:
                return cls(key)
            time.sleep(0.01)  # the creating process is between open() and write()
        raise ValueError(f"secret key file {path} is empty")

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("credential cannot be decrypted with this secret key") from exc
