"""Which providers exist in this deployment: the known vendors (with their public
base URLs, overridable per provider in settings) and any number of
operator-configured OpenAI-compatible endpoints."""

from __future__ import annotations

from dataclasses import dataclass

from pluggably.config import EndpointSettings, ProviderSettings
from pluggably.providers.anthropic import AnthropicProvider
from pluggably.providers.base import Credential, Provider
from pluggably.providers.google import GoogleProvider
from pluggably.providers.openai_compat import VENDOR_MAX_STOPS, OpenAICompatProvider
from pluggably.providers.upstream import Upstream


@dataclass(frozen=True)
class VendorInfo:
    base_url: str | None
    default_model: str | None
    image_generation: bool = False
    azure: bool = False


VENDORS: dict[str, VendorInfo] = {
    "openai": VendorInfo("https://api.openai.com/v1", "gpt-4o-mini", image_generation=True),
    "azure": VendorInfo(None, None, image_generation=True, azure=True),
    "xai": VendorInfo("https://api.x.ai/v1", "grok-3-mini"),
    "deepseek": VendorInfo("https://api.deepseek.com/v1", "deepseek-chat"),
    "groq": VendorInfo("https://api.groq.com/openai/v1", "llama-3.1-8b-instant"),
    "huggingface": VendorInfo(
        "https://router.huggingface.co/v1", "meta-llama/Llama-3.1-8B-Instruct"
    ),
}
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
                max_stops=VENDOR_MAX_STOPS,
            )
        for name, native in (("anthropic", AnthropicProvider), ("google", GoogleProvider)):
            override = providers.get(name)
            base = (override.base_url if override else None) or NATIVE_BASE_URLS[name]
            self._providers[name] = native(name, client, base)
        for name, endpoint in endpoints.items():
            self._providers[name] = OpenAICompatProvider(name, client, endpoint.base_url)

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

    def default_model(self, name: str) -> str | None:
        if name in self.endpoints:
            endpoint = self.endpoints[name]
            return endpoint.default_model or (endpoint.models[0] if endpoint.models else None)
        override = self.settings.get(name)
        if override and override.default_model:
            return override.default_model
        info = VENDORS.get(name)
        return info.default_model if info else NATIVE_DEFAULTS.get(name)

    @staticmethod
    def vendor_of(model: str) -> str | None:
        lowered = model.lower()
        return next((v for p, v in PREFIXES.items() if lowered.startswith(p)), None)
