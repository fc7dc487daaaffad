"""Moved to ``providers/schemas.py``; kept only for api/providers.py until its owner
imports from there."""

from pluggably.providers.schemas import ProviderInfo as ProviderInfo
from pluggably.providers.schemas import ProviderList as ProviderList
