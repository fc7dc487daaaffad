"""Building settings for the CLI and the server: validation and YAML problems become
one-line ``ConfigError`` messages that name the environment variable to fix."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from pluggably.config.settings import CONFIG_FILE_ENV, ENV_PREFIX, Settings
from pluggably.errors import ConfigError


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning any problem into a one-line ``ConfigError``."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except (OSError, ValueError, yaml.YAMLError) as exc:  # unreadable or malformed YAML file
        reason = " ".join(str(exc).split())
        raise ConfigError(f"{CONFIG_FILE_ENV}: {reason}") from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        name = (ENV_PREFIX + "__".join(loc)).upper() if loc else "settings"
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{name}: {message}")
    return "; ".join(parts)
