"""The master key: from ``PLUGGABLY_SECRET_KEY``, or a key file created 0600 on
first run outside the data directory. Purpose-specific subkeys are derived from
it, so no two features share key material."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from pluggably.config import Settings
from pluggably.errors import ConfigError

KEY_BYTES = 32


@dataclass(frozen=True)
class MasterKey:
    material: bytes = b""

    @property
    def key_id(self) -> str:
        """A short public fingerprint stored beside ciphertexts, so keys can rotate."""
        return hashlib.sha256(b"pluggably-key-id:" + self.material).hexdigest()[:12]

    def derive(self, purpose: str) -> bytes:
        return hmac.new(self.material, b"pluggably:" + purpose.encode(), hashlib.sha256).digest()

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r})"


def load_master_key(settings: Settings) -> MasterKey:
    if settings.secret_key is not None:
        value = settings.secret_key.get_secret_value()
        if len(value) < 32:
            raise ConfigError("PLUGGABLY_SECRET_KEY: must be at least 32 characters")
        return MasterKey(hashlib.sha256(value.encode()).digest())
    return MasterKey(_read_or_create(settings.secret_key_file))


def _read_or_create(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        encoded = base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES))
        # O_EXCL: two processes starting at once never overwrite each other's key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(encoded + b"\n")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"PLUGGABLY_SECRET_KEY_FILE: {path} is readable by other users; run chmod 600 {path}"
        )
    try:
        material = base64.urlsafe_b64decode(path.read_bytes().strip())
    except ValueError:
        material = b""
    if len(material) != KEY_BYTES:
        raise ConfigError(f"PLUGGABLY_SECRET_KEY_FILE: {path} does not hold a valid key")
    return material
