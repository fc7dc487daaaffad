"""Envelope encryption of provider credentials with AES-256-GCM.

Each secret gets its own random data key; the data key is wrapped by a key
derived from the active master key, whose id is stored with the ciphertext. The
associated data binds a ciphertext to its owner and row, so a sealed value copied
onto another row or user does not open.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pluggably.errors import CredentialUnreadable
from pluggably.keyring import Keyring, MasterKey

_PURPOSE = "credential-kek-v1"


@dataclass(frozen=True)
class Sealed:
    key_id: str
    blob: str  # base64(wrap_nonce + wrapped_dek + nonce + ciphertext)


class Vault:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def seal(self, payload: dict[str, Any], aad: str) -> Sealed:
        key = self.keyring.active
        dek = AESGCM.generate_key(bit_length=256)
        wrap_nonce, nonce = secrets.token_bytes(12), secrets.token_bytes(12)
        wrapped = AESGCM(key.derive(_PURPOSE)).encrypt(wrap_nonce, dek, aad.encode())
        data = json.dumps(payload, separators=(",", ":")).encode()
        ciphertext = AESGCM(dek).encrypt(nonce, data, aad.encode())
        blob = base64.b64encode(wrap_nonce + wrapped + nonce + ciphertext).decode()
        return Sealed(key_id=key.key_id, blob=blob)

    def open(self, sealed: Sealed, aad: str) -> dict[str, Any]:
        key: MasterKey | None = self.keyring.get_or_reload(sealed.key_id)
        if key is None:
            raise CredentialUnreadable(
                f"A stored credential was sealed with key {sealed.key_id}, which is not in the "
                "keyring; restore that key file or store the credential again."
            )
        try:
            raw = base64.b64decode(sealed.blob)
            wrap_nonce, wrapped = raw[:12], raw[12:60]
            nonce, ciphertext = raw[60:72], raw[72:]
            dek = AESGCM(key.derive(_PURPOSE)).decrypt(wrap_nonce, wrapped, aad.encode())
            data = AESGCM(dek).decrypt(nonce, ciphertext, aad.encode())
            payload: dict[str, Any] = json.loads(data)
        except (InvalidTag, ValueError) as exc:
            raise CredentialUnreadable(
                "A stored credential failed its integrity check and was not used; "
                "store the credential again."
            ) from exc
        return payload
