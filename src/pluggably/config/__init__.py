"""Operator settings: ``Settings`` (environment over YAML over defaults) in
``settings``, its nested groups in ``sections``, and ``load_settings`` (errors as
one-line ``ConfigError``) in ``loading``."""

from pluggably.config.loading import load_settings
from pluggably.config.sections import (
    ArtifactS3Settings,
    EndpointSettings,
    ExternalJwtSettings,
    ProviderSettings,
)
from pluggably.config.settings import Settings

__all__ = [
    "ArtifactS3Settings",
    "EndpointSettings",
    "ExternalJwtSettings",
    "ProviderSettings",
    "Settings",
    "load_settings",
]
