"""The master keyring: sealed provider credentials (``credentials/``), hashed tokens
and login tokens (``auth/``) and signed artifact URLs (``artifacts/``) all derive
their keys from it, so it lives beside them rather than inside one.

Either ``PLUGGABLY_SECRET_KEY`` (one key), or a key file outside the data
directory, created 0600 on first run, holding one base64 key per line: the last
line is the active key, earlier lines are retired keys kept so that data sealed
or tokens hashed under them stay readable until they are moved to the active key
(``pluggably secrets rotate``). Each key is known by a short fingerprint, its
key id, stored beside everything it protects. Purpose-specific subkeys are
derived per key, so no two features share key material.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from pluggably.config import Settings
from pluggably.errors import ConfigError

KEY_BYTES = 32


@dataclass(frozen=True)
class MasterKey:
    material: bytes

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"pluggably-key-id:" + self.material).hexdigest()[:12]

    def derive(self, purpose: str) -> bytes:
        return hmac.new(self.material, b"pluggably:" + purpose.encode(), hashlib.sha256).digest()

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r})"


class Keyring:
    """The active key and the retired ones, by key id.

    A keyring read from a file can ``reload`` it: a server that meets a key id it
    does not know (``pluggably secrets rotate`` ran while it was up, or another
    replica rotated) picks the new keys up without a restart.
    """

    RELOAD_INTERVAL_S = 5.0

    def __init__(self, keys: list[MasterKey], path: Path | None = None) -> None:
        self.path = path
        self._last_reload = 0.0
        self._set(keys)

    def _set(self, keys: list[MasterKey]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        self.active = keys[-1]
        self._by_id = {key.key_id: key for key in keys}

    def get(self, key_id: str) -> MasterKey | None:
        return self._by_id.get(key_id)

    def get_or_reload(self, key_id: str) -> MasterKey | None:
        key = self.get(key_id)
        if key is None and self.reload():
            key = self.get(key_id)
        return key

    def reload(self) -> bool:
        """Re-read the key file (at most every few seconds); True if keys changed."""
        now = time.monotonic()
        if self.path is None or now - self._last_reload < self.RELOAD_INTERVAL_S:
            return False
        self._last_reload = now
        try:
            keys = _read(self.path)
        except (OSError, ConfigError):
            return False
        ids = {k.key_id for k in keys}
        changed = ids != set(self._by_id) or keys[-1].key_id != self.active.key_id
        if changed:
            self._set(keys)
        return changed

    @property
    def keys(self) -> list[MasterKey]:
        """Every key, the active one first."""
        return [self.active, *(k for k in self._by_id.values() if k is not self.active)]

    def __repr__(self) -> str:
        return f"Keyring(active={self.active.key_id!r}, keys={len(self._by_id)})"


def load_keyring(settings: Settings) -> Keyring:
    if settings.secret_key is not None:
        value = settings.secret_key.get_secret_value()
        if len(value) < 32:
            raise ConfigError("PLUGGABLY_SECRET_KEY: must be at least 32 characters")
        return Keyring([MasterKey(hashlib.sha256(value.encode()).digest())])
    path = settings.secret_key_file
    if not path.exists():
        _create(path, [MasterKey(secrets.token_bytes(KEY_BYTES))])
    return Keyring(_read(path), path)


def add_key(settings: Settings) -> Keyring:
    """Append a fresh active key to the key file (atomically); retired keys stay."""
    if settings.secret_key is not None:
        raise ConfigError(
            "PLUGGABLY_SECRET_KEY: the master key comes from the environment; "
            "rotation needs the key file (unset PLUGGABLY_SECRET_KEY)"
        )
    load_keyring(settings)  # creates the file on a first run
    keys = [*_read(settings.secret_key_file), MasterKey(secrets.token_bytes(KEY_BYTES))]
    _write_atomically(settings.secret_key_file, keys)
    return Keyring(keys, settings.secret_key_file)


def _encode(keys: list[MasterKey]) -> bytes:
    return b"".join(base64.urlsafe_b64encode(k.material) + b"\n" for k in keys)


def _create(path: Path, keys: list[MasterKey]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # O_EXCL: two processes starting at once never overwrite each other's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as handle:
        handle.write(_encode(keys))


def _write_atomically(path: Path, keys: list[MasterKey]) -> None:
    tmp = path.with_name(path.name + f".tmp-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(_encode(keys))
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def _read(path: Path) -> list[MasterKey]:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"PLUGGABLY_SECRET_KEY_FILE: {path} is readable by other users; run chmod 600 {path}"
        )
    keys = []
    for line in path.read_bytes().split():
        try:
            material = base64.urlsafe_b64decode(line)
        except ValueError:
            material = b""
        if len(material) != KEY_BYTES:
            raise ConfigError(f"PLUGGABLY_SECRET_KEY_FILE: {path} does not hold valid keys")
        keys.append(MasterKey(material))
    if not keys:
        raise ConfigError(f"PLUGGABLY_SECRET_KEY_FILE: {path} is empty")
    return keys
