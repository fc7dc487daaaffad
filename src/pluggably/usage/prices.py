"""Prices: the table shipped with the package (usage/prices.yaml) for known provider
models, overridden or extended by the operator (setting ``prices``); local models cost
0 unless the operator prices them. Keys are ``provider:model`` patterns
(``openai:gpt-4o-mini*``); the most specific matching key wins."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Price(BaseModel):
    """US dollars per million tokens, and per image generated."""

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = Field(default=0.0, ge=0, description="$ per 1M prompt tokens.")
    output_per_mtok: float = Field(default=0.0, ge=0, description="$ per 1M completion tokens.")
    per_image: float | None = Field(default=None, ge=0, description="$ per image generated.")
