"""Bodies of the model routes (API.md §4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Modality = Literal["text", "image", "3d"]
ModelStatusName = Literal["available", "downloading", "failed", "disabled"]
RuntimeStatus = Literal["unloaded", "loading", "loaded", "busy"]


class Capabilities(BaseModel):
    max_context_tokens: int | None = None
    output_formats: list[str] = Field(default_factory=list)
    input_modalities: list[str] = Field(default_factory=list)
    hardware: list[str] = Field(default_factory=list)


class Source(BaseModel):
    type: Literal["huggingface", "url", "local", "provider"]
    uri: str | None = None
    revision: str | None = None


class Availability(BaseModel):
    access: Literal["available", "locked", "unknown"] = "available"
    credits_status: dict[str, Any] | None = None


class Documentation(BaseModel):
    status: Literal["pending", "ok", "failed"]
    error: str | None = None
    summary: str | None = None
    usage: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    license: str | None = None
    source_url: str | None = None


class ModelInfo(BaseModel):
    id: str
    name: str
    version: str | None
    provider: str
    modality: Modality
    description: str | None
    capabilities: Capabilities
    source: Source
    format: Literal["gguf", "transformers", "diffusers", "shap_e", "remote"]
    size_bytes: int | None
    local_path: str | None = Field(default=None, description="Absolute path; admins only.")
    status: ModelStatusName
    status_reason: str | None = None
    runtime_status: RuntimeStatus | None = Field(description="Local models only.")
    queue_depth: int = 0
    is_default: bool
    pinned: bool
    last_used_at: datetime | None
    created_at: datetime
    updated_at: datetime
    availability: Availability
    documentation: Documentation | None = Field(
        default=None, description="On GET /v1/models/{id} once enrichment has run."
    )


class ModelList(BaseModel):
    models: list[ModelInfo]
    next_cursor: str | None


class ModelStatus(BaseModel):
    model_id: str
    status: ModelStatusName
    runtime_status: RuntimeStatus | None
    queue_depth: int
    loaded_at: datetime | None
    last_used_at: datetime | None
    memory_bytes: int | None


class ParameterSchema(BaseModel):
    model_id: str
    version: int
    modality: Modality
    schema_: dict[str, Any] = Field(alias="schema", serialization_alias="schema")

    model_config = {"populate_by_name": True}


# -- Hugging Face search (GET /v1/models/search) --


class GgufFile(BaseModel):
    filename: str
    size_bytes: int | None


class SearchResult(BaseModel):
    id: str
    name: str
    author: str | None
    tags: list[str]
    modality_hints: list[str]
    pipeline_tag: str | None
    downloads: int | None
    likes: int | None
    last_modified: datetime | None
    gated: bool
    files: list[GgufFile] | None = Field(
        default=None, description="GGUF quantizations with sizes (GGUF repos only)."
    )
    download_source: dict[str, Any]


class SearchPage(BaseModel):
    results: list[SearchResult]
    next_cursor: str | None
