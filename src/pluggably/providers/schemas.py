"""The answer of ``GET /v1/providers``: what each provider of this deployment can serve."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class PoolMemberInfo(BaseModel):
    """One server of an endpoint pool, as this replica sees it."""

    url: str = Field(description="The server's URL (without credentials or query).")
    state: Literal["up", "down", "cooling"] = Field(
        description="up: takes calls first; down: its health check failed; cooling: calls "
        "to it failed just now. Calls go to the others first, to it when all are failing."
    )
    in_flight: int = Field(description="Calls this replica has in flight to it.")
    failures: int = Field(
        description="Its failures in a row, each one a longer cooldown (calls that fail "
        "while it cools down already do not count again); a success resets it."
    )
    last_error: str | None = Field(description="The error code of its last failed call.")
    last_error_at: datetime | None
    checked_at: datetime | None = Field(description="Its last health check (None: none yet).")


class ProviderInfo(BaseModel):
    name: str
    configured: bool
    supported_modalities: list[str] = Field(
        description="What it generates: text, image, 3d (the modalities the original "
        "PlugAI clients know); whether it embeds is `embeddings`."
    )
    embeddings: bool = Field(
        default=False, description="It serves embeddings (modality `embedding`)."
    )
    credential_types: list[str]
    default_model: str | None
    models_discovered: list[str] | None = None
    credits_status: dict[str, object] | None = None
    pool: list[PoolMemberInfo] | None = Field(
        default=None,
        description="An endpoint with several servers (a pool): each server's state. "
        "Administrators only.",
    )


class ProviderList(BaseModel):
    providers: list[ProviderInfo]
