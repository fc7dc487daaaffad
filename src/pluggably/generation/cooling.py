"""Whose failure cools a candidate down: operator endpoints and local models cool down
for everyone; a vendor only for the user whose key is failing (another user's key may
be fine)."""

from __future__ import annotations

from pluggably.auth.principal import Principal
from pluggably.providers.directory import ProviderDirectory
from pluggably.routing.resolve import LOCAL, Target


def cooldown_key(providers: ProviderDirectory, principal: Principal, target: Target) -> str:
    if target.provider == LOCAL or providers.is_endpoint(target.provider):
        return target.label
    return f"{principal.user_id}|{target.label}"
