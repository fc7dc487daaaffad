"""Bodies of the model routes (API.md §4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

Modality = Literal["text", "image", "3d", "embedding"]
ModelStatusName = Literal["available", "downloading", "failed", "disabled"]
RuntimeStatus = Literal["unloaded", "loading", "loaded", "busy"]


class Capabilities(BaseModel):
    max_context_tokens: int | None = None
    output_formats: list[str] = Field(default_factory=list)
    input_modalities: list[str] = Field(default_factory=list)
    hardware: list[str] = Field(default_factory=list)
    tool_calling: bool | None = Field(
        default=None,
        description="A GGUF whose chat template takes tools: it can choose to call one "
        "(tool_choice 'auto'). Every GGUF model can be forced to call one.",
    )
    embedding_dimensions: int | None = Field(
        default=None,
        description="Embedding models: the length of the vectors they return (the most "
        "'dimensions' a request may ask for), when known.",
    )


class Source(BaseModel):
    """Where a registry model's files came from. ``uri``: the repo id or URL; for a
    file found in (or registered from) the models directory, its path there."""

    type: Literal["huggingface", "url", "local"]
    uri: str
    revision: str | None = None


CreditsState = Literal["available", "exhausted", "unknown"]


class ModelCreditsStatus(BaseModel):
    provider: str
    status: CreditsState = Field(
        description="What is known of the user's credits at the provider. A transient "
        "rate limit is not a credits state: it reads 'unknown' here (GET /v1/providers "
        "says 'rate_limited')."
    )


class Availability(BaseModel):
    provider: str = Field(description="The model's provider ('local' for registry models).")
    access: Literal["available", "locked", "unknown"] = "available"
    credits_status: ModelCreditsStatus | None = None


class Documentation(BaseModel):
    status: Literal["pending", "ok", "failed"]
    error: str | None = None
    summary: str | None = None
    usage: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    license: str | None = None
    source_url: str | None = None


VERSION_DESCRIPTION = (
    "Never null. Registry models: the registered version (a GGUF's quantization, or what "
    "the download named), else the source revision, else 'latest'. Provider models: "
    "'latest', since a provider serves its current release under the model name and "
    "its model list gives no version."
)


class ModelInfo(BaseModel):
    id: str
    name: str
    version: str = Field(description=VERSION_DESCRIPTION)
    provider: str
    modality: Modality
    description: str | None
    capabilities: Capabilities
    source: Source | None = Field(
        description="Registry models only; null for provider models (``format: remote``)."
    )
    format: Literal[
        "gguf", "transformers", "sentence_transformers", "diffusers", "shap_e", "remote"
    ]
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


class OpenAIListedModel(BaseModel):
    """A model as OpenAI's list names it."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    """The native page, with OpenAI's list fields beside it: clients given the base URL
    ``/v1`` read ``GET /v1/models`` as OpenAI's model list (API.md §8)."""

    models: list[ModelInfo]
    next_cursor: str | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def object(self) -> Literal["list"]:
        return "list"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def data(self) -> list[OpenAIListedModel]:
        """The same models in OpenAI's shape (``owned_by``: the provider)."""
        return [
            OpenAIListedModel(id=m.id, created=int(m.created_at.timestamp()), owned_by=m.provider)
            for m in self.models
        ]


class ModelStatus(BaseModel):
    model_id: str
    status: ModelStatusName
    runtime_status: RuntimeStatus = Field(
        description="Local models: their residency. Provider models are always 'loaded': "
        "there is nothing to load, the provider serves them."
    )
    queue_depth: int
    loaded_at: datetime | None
    last_used_at: datetime | None
    memory_bytes: int | None


class ParameterSchema(BaseModel):
    model_id: str
    version: str = Field(
        description="The schema's version, a string of digits ('1', '2', ...): a model's "
        "schema may be replaced by a newer one."
    )
    modality: Modality
    schema_: dict[str, Any] = Field(
        alias="schema", serialization_alias="schema", description="The JSON Schema itself."
    )
    properties: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="The schema's parameters at the top level as the PlugAI clients read "
        "them: each with one JSON type in 'type' (a parameter that takes several, such as "
        "'stop', names the first; 'schema' has the exact rule).",
    )

    model_config = {"populate_by_name": True}


def client_properties(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``schema``'s properties, each with a single ``type`` string (see ParameterSchema)."""
    out: dict[str, dict[str, Any]] = {}
    for name, entry in (schema.get("properties") or {}).items():
        if not isinstance(entry, dict):
            continue
        kind = entry.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), None)
        if not isinstance(kind, str):
            branches = entry.get("anyOf") or entry.get("oneOf") or []
            kinds = [b.get("type") for b in branches if isinstance(b, dict)]
            kind = next((k for k in kinds if isinstance(k, str) and k != "null"), "string")
        out[name] = {**entry, "type": kind}
    return out


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
