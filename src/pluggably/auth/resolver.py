"""Credential resolution: an ordered chain of verifiers, each recognising one kind
of credential. Later issues add API tokens, login JWTs and external JWTs as
further verifiers without touching the routes."""

from __future__ import annotations

import hmac
from typing import Protocol

from pluggably.auth.principal import ALL_SCOPES, Principal
from pluggably.errors import Unauthorized


class Verifier(Protocol):
    async def verify(self, credential: str) -> Principal | None:
        """A Principal if this verifier owns the credential and it is valid.

        ``None`` means "not mine"; a credential that is recognisably this verifier's
        but invalid (expired, revoked) raises ``Unauthorized`` with the reason.
        """


class AdminKeyVerifier:
    """The bootstrap admin key from configuration, acting as the admin user row."""

    def __init__(self, admin_key: str, admin_user_id: str) -> None:
        self._key = admin_key.encode()
        self._principal = Principal(
            user_id=admin_user_id, role="admin", scopes=ALL_SCOPES, via="admin_key"
        )

    async def verify(self, credential: str) -> Principal | None:
        if hmac.compare_digest(credential.encode(), self._key):
            return self._principal
        return None


class CredentialResolver:
    def __init__(self, verifiers: list[Verifier], local_principal: Principal | None) -> None:
        self.verifiers = verifiers
        self.local_principal = local_principal

    async def resolve(self, credential: str | None, *, client_is_loopback: bool) -> Principal:
        if credential:
            for verifier in self.verifiers:
                principal = await verifier.verify(credential)
                if principal is not None:
                    return principal
            raise Unauthorized("The credential is not valid.")
        if self.local_principal is not None and client_is_loopback:
            return self.local_principal
        raise Unauthorized()
