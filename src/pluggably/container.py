"""The stateful objects of one app, built once in the lifespan and handed to routes
through typed dependencies (``api/deps.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from pluggably.auth.resolver import CredentialResolver
from pluggably.config import Settings
from pluggably.credentials.keys import MasterKey
from pluggably.db import Database
from pluggably.observability.metrics import Metrics
from pluggably.startup import Readiness


@dataclass
class Container:
    settings: Settings
    metrics: Metrics
    readiness: Readiness
    db: Database
    auth: CredentialResolver
    master_key: MasterKey
    admin_user_id: str
