"""Who is calling, and what they may do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pluggably.usage.limits import Limits


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


ALL_SCOPES: frozenset[Scope] = frozenset(Scope)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request.

    ``via`` names the credential kind (``admin_key``, ``local``, ``api_token``,
    ``login``, ``external_jwt``) for logs and audits; ``credential_id`` is the id of
    the token row or JWT ``jti`` when there is one.
    """

    user_id: str
    role: str
    scopes: frozenset[Scope]
    via: str
    credential_id: str | None = None
    credential_expires_at: datetime | None = None
    limits: Limits | None = None  # the API token's own limits (usage/limits.py)

    @property
    def token_id(self) -> str | None:
        """The API token this request came with, if any."""
        return self.credential_id if self.via == "api_token" else None

    @property
    def is_admin(self) -> bool:
        return self.allows(Scope.ADMIN)

    def allows(self, scope: Scope) -> bool:
        """Scopes nest: ``admin`` ⊃ ``write`` ⊃ ``read``; ``admin`` also needs the admin role."""
        if scope is Scope.ADMIN:
            return self.role == "admin" and Scope.ADMIN in self.scopes
        held = {Scope.READ: 0, Scope.WRITE: 1, Scope.ADMIN: 2}
        return any(held[s] >= held[scope] for s in self.scopes)
