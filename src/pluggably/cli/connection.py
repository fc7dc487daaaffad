"""Where the remote commands connect: the server URL and the credential.

Each comes from the first of: the command's flags (``--server``, ``--token`` or its
alias ``--api-key``; after the group or after the command), the environment
(``PLUGGABLY_SERVER_URL`` or its older name ``PLUGGABLY_URL``; ``PLUGGABLY_TOKEN``,
then ``PLUGGABLY_API_KEY``), the config file, the default (``http://127.0.0.1:8080``,
no credential).

The config file is TOML, ``$XDG_CONFIG_HOME/pluggably/cli.toml``
(``~/.config/pluggably/cli.toml``) or the file ``PLUGGABLY_CLI_CONFIG`` names::

    server = "http://gpu-box:8080"
    token = "plg_..."        # or api_key = "..."
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_URL = "http://127.0.0.1:8080"
SERVER_ENV = ("PLUGGABLY_SERVER_URL", "PLUGGABLY_URL")
TOKEN_ENV = ("PLUGGABLY_TOKEN", "PLUGGABLY_API_KEY")
CONFIG_ENV = "PLUGGABLY_CLI_CONFIG"
FILE_KEYS = frozenset({"server", "token", "api_key"})


class UsageError(Exception):
    """A bad flag, environment variable or config file: one line on stderr, exit 2."""


@dataclass(frozen=True)
class Flags:
    """What the group's flags said (``pluggably models --server URL list``)."""

    server: str | None = None
    token: str | None = None


@dataclass(frozen=True)
class Connection:
    server: str
    token: str | None
    server_from: str  # "--server", "PLUGGABLY_SERVER_URL", the config file, or "default"


def config_path(env: Mapping[str, str]) -> Path:
    named = env.get(CONFIG_ENV)
    if named:
        return Path(named).expanduser()
    from platformdirs import user_config_path

    return user_config_path("pluggably", appauthor=False) / "cli.toml"


def check_url(value: str, where: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise UsageError(f"{where}: {value!r} is not an http:// or https:// URL")
    return value.rstrip("/")


def _string(data: dict[str, Any], key: str, path: Path) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise UsageError(f"config file {path}: {key} must be a string")
    return value or None


def read_config(path: Path, *, named: bool) -> dict[str, str]:
    """The file's settings; a missing default file is no settings, a missing named one
    an error."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if named:
            raise UsageError(f"config file {path} (from {CONFIG_ENV}) does not exist") from None
        return {}
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - FILE_KEYS)
    if unknown:
        known = ", ".join(sorted(FILE_KEYS))
        raise UsageError(f"config file {path}: unknown key {unknown[0]!r} (known: {known})")
    settings = {k: v for k in sorted(FILE_KEYS) if (v := _string(data, k, path))}
    if ("token" in settings or "api_key" in settings) and _readable_by_others(path):
        typer.echo(
            f"pluggably: warning: {path} holds a credential and others can read it; "
            f"chmod 600 {path}",
            err=True,
        )
    return settings


def _readable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH))
    except OSError:
        return False


def _first_env(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str] | None:
    for name in names:
        if env.get(name):
            return env[name], name
    return None


def resolve(flags: Flags, env: Mapping[str, str] | None = None) -> Connection:
    """The connection for these flags: flags > environment > config file > default."""
    env = os.environ if env is None else env
    path = config_path(env)
    file = read_config(path, named=bool(env.get(CONFIG_ENV)))

    if flags.server:
        server, server_from = flags.server, "--server"
    elif found := _first_env(env, SERVER_ENV):
        server, server_from = found
    elif "server" in file:
        server, server_from = file["server"], f"config file {path}"
    else:
        server, server_from = DEFAULT_URL, "default"
    server = check_url(server, server_from)

    token = flags.token
    if not token and (found := _first_env(env, TOKEN_ENV)):
        token = found[0]
    if not token:
        token = file.get("token") or file.get("api_key")
    return Connection(server, token, server_from)


# -- options ----------------------------------------------------------------------------------

_SERVER_HELP = "Server URL (else $PLUGGABLY_SERVER_URL, cli.toml, http://127.0.0.1:8080)."
_CREDENTIAL_HELP = (
    "API token, login token or admin key (else $PLUGGABLY_TOKEN, $PLUGGABLY_API_KEY, cli.toml)."
)

Server = Annotated[str | None, typer.Option("--server", show_default=False, help=_SERVER_HELP)]
Token = Annotated[
    str | None,
    typer.Option("--token", "--api-key", show_default=False, help=_CREDENTIAL_HELP),
]


def connection(ctx: typer.Context, server: str | None, token: str | None) -> Connection:
    """The command's connection: its own flags, then its group's, then the rest."""
    group = ctx.find_object(Flags) or Flags()
    return resolve(Flags(server or group.server, token or group.token))
