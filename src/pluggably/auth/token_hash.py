"""Bearer secrets shown once (API tokens, invites): random, prefixed, stored only as
a keyed hash. Hashes made under a retired master key still match, so rotation
does not void tokens; callers move them to the active key on use."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from pluggably.keyring import Keyring

_PURPOSE = "token-hash-v1"


@dataclass(frozen=True)
class NewSecret:
    plaintext: str
    token_hash: str
    key_id: str


class TokenHasher:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def new(self, prefix: str) -> NewSecret:
        plaintext = f"{prefix}_{secrets.token_urlsafe(32)}"
        key = self.keyring.active
        return NewSecret(plaintext, self._digest(key.derive(_PURPOSE), plaintext), key.key_id)

    def candidates(self, plaintext: str) -> dict[str, str]:
        """``{hash: key_id}`` for every key in the keyring."""
        return {
            self._digest(key.derive(_PURPOSE), plaintext): key.key_id for key in self.keyring.keys
        }

    def active_hash(self, plaintext: str) -> NewSecret:
        key = self.keyring.active
        return NewSecret(plaintext, self._digest(key.derive(_PURPOSE), plaintext), key.key_id)

    @staticmethod
    def _digest(key: bytes, plaintext: str) -> str:
        return hmac.new(key, plaintext.encode(), hashlib.sha256).hexdigest()
