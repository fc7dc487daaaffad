"""Signed download URLs: ``/v1/artifacts/{id}?expires=<unix s>&sig=<hex>``.

``sig = HMAC-SHA256(k, f"{id}:{expires}")`` where ``k`` is derived from a master
key for this purpose only. New links are signed with the active key; any key in
the keyring verifies, so links handed out before a rotation keep working until
they expire or their key is dropped from the keyring.
"""

from __future__ import annotations

import hashlib
import hmac

from pluggably.keyring import Keyring, MasterKey

PURPOSE = "artifact-url-v1"


class UrlSigner:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        # Derivation is one HMAC; caching by key id just keeps it off the hot path.
        self._derived: dict[str, bytes] = {}

    def _key(self, master: MasterKey) -> bytes:
        key = self._derived.get(master.key_id)
        if key is None:
            key = self._derived[master.key_id] = master.derive(PURPOSE)
        return key

    def _mac(self, master: MasterKey, artifact_id: str, expires: int) -> str:
        message = f"{artifact_id}:{expires}".encode()
        return hmac.new(self._key(master), message, hashlib.sha256).hexdigest()

    def sign(self, artifact_id: str, expires: int) -> str:
        return self._mac(self.keyring.active, artifact_id, expires)

    def verify(self, artifact_id: str, expires: int, sig: str) -> bool:
        """Constant-time check against every key; a miss re-reads the key file once
        (rate-limited by the keyring) in case another replica rotated keys."""
        if self._matches(artifact_id, expires, sig):
            return True
        return self.keyring.reload() and self._matches(artifact_id, expires, sig)

    def _matches(self, artifact_id: str, expires: int, sig: str) -> bool:
        given = sig.lower().encode("ascii", "replace")
        # No early exit: the time taken does not tell which key (if any) matched.
        found = False
        for master in self.keyring.keys:
            expected = self._mac(master, artifact_id, expires).encode()
            found |= hmac.compare_digest(expected, given)
        return found
