"""Answers of the operations routes (health, readiness, version, features): kept apart
from the routes so that the client imports them without the server's machinery."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready"] = "ready"


class Version(BaseModel):
    version: str


class Features(BaseModel):
    local_models_enabled: bool
    runtimes: dict[str, bool]
    artifacts_backend: str
    streaming: bool = True
    providers: list[str]
