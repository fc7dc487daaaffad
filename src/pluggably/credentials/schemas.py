"""Bodies of the provider-keys routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

CredentialType = Literal["api_key", "endpoint_key", "oauth_token", "service_account"]


class ProviderKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    provider: str = Field(min_length=1, max_length=64)
    credential_type: CredentialType = "api_key"
    api_key: SecretStr | None = None
    endpoint: str | None = Field(default=None, max_length=2048)
    oauth_token: SecretStr | None = None
    service_account_json: SecretStr | None = Field(default=None, max_length=65536)
    label: str | None = Field(default=None, max_length=100)


class ProviderKeyInfo(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    provider: str
    credential_type: CredentialType
    masked_key: str
    label: str | None
    created_at: datetime
    updated_at: datetime


class ProviderKeyDeleted(ProviderKeyInfo):
    """The answer of DELETE /v1/users/provider-keys/{provider}: the masked credential
    that was removed."""

    deleted: Literal[True] = True
