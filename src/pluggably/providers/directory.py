"""Which providers exist in this deployment: the known vendors (with their public
base URLs, overridable per provider in settings) and any number of
operator-configured OpenAI-compatible endpoints (one server each, or a pool)."""

from __future__ import annotations

from dataclasses import dataclass

from pluggably.config import EndpointSettings, ProviderSettings
from pluggably.observability.metrics import Metrics
from pluggably.providers.anthropic import AnthropicProvider
from pluggably.providers.base import Credential, Provider
from pluggably.providers.embeddings import is_embedding_model
from pluggably.providers.google import GoogleProvider
from pluggably.providers.openai_compat import VENDOR_MAX_STOPS, OpenAICompatProvider
from pluggably.providers.pool import EndpointPool, Member
from pluggably.providers.upstream import Upstream


@dataclass(frozen=True)
class VendorInfo:
    base_url: str | None
    default_model: str | None
    image_generation: bool = False
    azure: bool = False
    # The vendor serves POST /embeddings. xAI, DeepSeek and Groq publish no embeddings
    # API, and the Hugging Face router's OpenAI-compatible API is chat only (its
    # feature-extraction pipelines speak another protocol).
    embeddings: bool = False


VENDORS: dict[str, VendorInfo] = {
    "openai": VendorInfo(
        "https://api.openai.com/v1", "gpt-4o-mini", image_generation=True, embeddings=True
    ),
    "azure": VendorInfo(None, None, image_generation=True, azure=True, embeddings=True),
    "xai": VendorInfo("https://api.x.ai/v1", "grok-3-mini"),
    "deepseek": VendorInfo("https://api.deepseek.com/v1", "deepseek-chat"),
    "groq": VendorInfo("https://api.groq.com/openai/v1", "llama-3.1-8b-instant"),
    "huggingface": VendorInfo(
        "https://router.huggingface.co/v1", "meta-llama/Llama-3.1-8B-Instruct"
    ),
}
# The model a request for an embedding names no model of (only "openai:" or "auto").
EMBEDDING_DEFAULTS = {"openai": "text-embedding-3-small", "google": "gemini-embedding-001"}
# Vendors with their own wire protocol (adapters in their own modules).
NATIVE_DEFAULTS = {"anthropic": "claude-3-5-haiku-latest", "google": "gemini-2.0-flash"}
NATIVE_BASE_URLS = {
    "anthropic": "https://api.anthropic.com",
    "google": "https://generativelanguage.googleapis.com",
}
# Model-name prefixes that identify a vendor when no provider is named.
PREFIXES = {
    "gpt-": "openai",
    "chatgpt-": "openai",
    "o1": "openai",
    "o3": "openai",
    "o4": "openai",
    "dall-e": "openai",
    "gpt-image": "openai",
    "text-embedding-": "openai",
    "claude-": "anthropic",
    "gemini-": "google",
    "grok-": "xai",
    "deepseek-": "deepseek",
}


class ProviderDirectory:
    def __init__(
        self,
        client: Upstream,
        providers: dict[str, ProviderSettings],
        endpoints: dict[str, EndpointSettings],
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = providers
        self.endpoints = endpoints
        self._providers: dict[str, Provider] = {}
        for name, info in VENDORS.items():
            override = providers.get(name)
            base = (override.base_url if override else None) or info.base_url
            self._providers[name] = OpenAICompatProvider(
                name,
                client,
                base,
                azure=info.azure,
                image_generation=info.image_generation,
                embeddings=info.embeddings,
                max_stops=VENDOR_MAX_STOPS,
            )
        for name, native in (("anthropic", AnthropicProvider), ("google", GoogleProvider)):
            override = providers.get(name)
            base = (override.base_url if override else None) or NATIVE_BASE_URLS[name]
            self._providers[name] = native(name, client, base)
        for name, endpoint in endpoints.items():
            self._providers[name] = self._endpoint(name, endpoint, client, metrics)

    def _endpoint(
        self, name: str, endpoint: EndpointSettings, client: Upstream, metrics: Metrics | None
    ) -> Provider:
        """One server, or a pool of them (several URLs)."""
        # vLLM, llama.cpp server, Ollama, TEI, LocalAI… all serve /embeddings.
        servers = [
            OpenAICompatProvider(name, client, url, embeddings=True) for url in endpoint.urls
        ]
        if len(servers) == 1:
            return servers[0]
        return EndpointPool(
            name,
            [Member(server, url) for server, url in zip(servers, endpoint.urls, strict=True)],
            credential=self.endpoint_credential(name),
            check_interval_s=endpoint.health_check_interval_s,
            metrics=metrics,
        )

    @property
    def pools(self) -> list[EndpointPool]:
        """The endpoints with several servers (their health checks run periodically)."""
        return [p for p in self._providers.values() if isinstance(p, EndpointPool)]

    def register(self, provider: Provider) -> None:
        """Add (or replace) a provider under its own name."""
        self._providers[provider.name] = provider

    def get(self, name: str) -> Provider | None:
        return self._providers.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self._providers)

    def is_endpoint(self, name: str) -> bool:
        """Operator-run servers: free to use, no per-user credential."""
        return name in self.endpoints

    def endpoint_credential(self, name: str) -> Credential:
        endpoint = self.endpoints[name]
        key = endpoint.api_key.get_secret_value() if endpoint.api_key else ""
        return {"api_key": key}

    def default_model(self, name: str, modality: str = "text") -> str | None:
        """The model of ``name`` a request of ``modality`` gets when it names none."""
        if modality == "embedding":
            return self._embedding_default(name)
        if name in self.endpoints:
            endpoint = self.endpoints[name]
            return endpoint.default_model or (endpoint.models[0] if endpoint.models else None)
        override = self.settings.get(name)
        if override and override.default_model:
            return override.default_model
        info = VENDORS.get(name)
        return info.default_model if info else NATIVE_DEFAULTS.get(name)

    def _embedding_default(self, name: str) -> str | None:
        """An endpoint's first listed embedding model (by its name), else the vendor's."""
        if name in self.endpoints:
            return next((m for m in self.endpoints[name].models if is_embedding_model(m)), None)
        return EMBEDDING_DEFAULTS.get(name)

    @staticmethod
    def vendor_of(model: str) -> str | None:
        lowered = model.lower()
        return next((v for p, v in PREFIXES.items() if lowered.startswith(p)), None)
