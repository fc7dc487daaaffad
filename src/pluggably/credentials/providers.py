"""Which providers exist, which credential types each accepts, and how each
credential is checked before it is sealed."""

from __future__ import annotations

import ipaddress
import json
import socket
from typing import Any
from urllib.parse import urlsplit

from pluggably.errors import UnsupportedProvider, ValidationFailed
from pluggably.netguard import is_public_address

API_KEY, ENDPOINT_KEY, OAUTH_TOKEN, SERVICE_ACCOUNT = (
    "api_key",
    "endpoint_key",
    "oauth_token",
    "service_account",
)

# provider -> accepted credential types
KNOWN_PROVIDERS: dict[str, tuple[str, ...]] = {
    "openai": (API_KEY,),
    "anthropic": (API_KEY,),
    "google": (API_KEY, OAUTH_TOKEN, SERVICE_ACCOUNT),
    "azure": (ENDPOINT_KEY,),
    "xai": (API_KEY,),
    "deepseek": (API_KEY,),
    "groq": (API_KEY,),
    "huggingface": (API_KEY,),
}


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        message, details=[{"loc": ["body", field], "msg": message, "type": "invalid_credential"}]
    )


def _token(field: str, value: str | None) -> str:
    if not value:
        raise _invalid(field, f"{field} is required for this credential type.")
    if len(value) < 8 or len(value) > 8192 or not all(33 <= ord(c) <= 126 for c in value):
        raise _invalid(field, f"{field} must be 8-8192 printable ASCII characters without spaces.")
    return value


def check_endpoint(url: str | None) -> str:
    """An https endpoint on a public host name: the gateway will call it, so loopback,
    private and link-local addresses are refused (no SSRF through credentials)."""
    if not url:
        raise _invalid("endpoint", "endpoint is required for this credential type.")
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme != "https" or not host:
        raise _invalid("endpoint", "endpoint must be an https:// URL.")
    if parts.username or parts.password:
        raise _invalid("endpoint", "endpoint must not contain credentials.")
    if host == "localhost" or host.endswith((".localhost", ".internal", ".local")):
        raise _invalid("endpoint", "endpoint must be a public host.")
    address = _ip_literal(host)
    if address is not None and not is_public_address(address):
        raise _invalid("endpoint", "endpoint must be a public host.")
    return url.rstrip("/")


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host name spells directly, in any form the C resolver accepts
    (``127.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1``), or None for a name.
    Names that resolve to private addresses are checked again when connecting."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _service_account(raw: str | None) -> dict[str, Any]:
    if not raw:
        raise _invalid("service_account_json", "service_account_json is required.")
    try:
        info = json.loads(raw)
    except ValueError:
        raise _invalid("service_account_json", "service_account_json is not JSON.") from None
    required = ("type", "project_id", "private_key_id", "private_key", "client_email")
    missing = [k for k in required if not isinstance(info, dict) or not info.get(k)]
    if missing:
        raise _invalid("service_account_json", f"service_account_json lacks {', '.join(missing)}.")
    if info["type"] != "service_account" or "PRIVATE KEY-----" not in info["private_key"]:
        raise _invalid("service_account_json", "service_account_json is not a service account key.")
    return dict(info)


def build_payload(
    provider: str,
    credential_type: str,
    *,
    api_key: str | None,
    endpoint: str | None,
    oauth_token: str | None,
    service_account_json: str | None,
) -> tuple[dict[str, Any], str]:
    """The secret payload to seal and its masked form for display."""
    allowed = KNOWN_PROVIDERS.get(provider)
    if allowed is None:
        raise UnsupportedProvider(
            f"Unknown provider '{provider}'; known: {', '.join(sorted(KNOWN_PROVIDERS))}."
        )
    if credential_type not in allowed:
        raise _invalid(
            "credential_type",
            f"{provider} accepts {' or '.join(allowed)} credentials, not {credential_type}.",
        )
    if credential_type == API_KEY:
        key = _token("api_key", api_key)
        return {"api_key": key}, mask(key)
    if credential_type == ENDPOINT_KEY:
        key = _token("api_key", api_key)
        return {"api_key": key, "endpoint": check_endpoint(endpoint)}, mask(key)
    if credential_type == OAUTH_TOKEN:
        token = _token("oauth_token", oauth_token)
        return {"oauth_token": token}, mask(token)
    info = _service_account(service_account_json)
    return {
        "service_account": info
    }, f"{info['client_email'][:40]} ({mask(info['private_key_id'])})"


def mask(secret: str) -> str:
    """Enough to recognise a key, never enough to use it."""
    if len(secret) < 16:
        return "…" + secret[-2:]
    return f"{secret[:3]}…{secret[-4:]}"
