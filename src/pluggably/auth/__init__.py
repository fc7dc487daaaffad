"""Turning a credential into a Principal."""

from pluggably.auth.principal import Principal, Scope

__all__ = ["Principal", "Scope"]
