"""Settings: env prefix and nesting, the YAML file, precedence, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pluggably.config import Settings, load_settings
from pluggably.errors import ConfigError


def test_defaults_follow_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    settings = load_settings()
    assert settings.data_dir == tmp_path / "xdg-data" / "pluggably"
    assert settings.secret_key_file == tmp_path / "xdg-config" / "pluggably" / "secret.key"
    assert settings.resolved_database_url == (
        f"sqlite+aiosqlite:///{tmp_path / 'xdg-data' / 'pluggably' / 'pluggably.db'}"
    )
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    # Reading settings creates nothing.
    assert not (tmp_path / "xdg-data").exists()


def test_env_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PLUGGABLY_PORT", "9123")
    monkeypatch.setenv("PLUGGABLY_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("PLUGGABLY_ADMIN_KEY", "a-long-enough-admin-key")
    settings = load_settings(secret_key_file=tmp_path / "k")
    assert settings.port == 9123
    assert settings.data_dir == tmp_path / "d"
    assert settings.admin_key is not None
    assert settings.admin_key.get_secret_value() == "a-long-enough-admin-key"
    assert "a-long-enough-admin-key" not in repr(settings)


def test_yaml_file_and_env_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "pluggably.yaml"
    config.write_text(f"port: 7000\nhost: 127.0.0.2\ndata_dir: {tmp_path / 'y'}\n")
    monkeypatch.setenv("PLUGGABLY_CONFIG", str(config))
    monkeypatch.setenv("PLUGGABLY_PORT", "7001")
    settings = load_settings(secret_key_file=tmp_path / "k")
    assert settings.port == 7001  # env wins
    assert settings.host == "127.0.0.2"  # from the file
    assert settings.data_dir == tmp_path / "y"


def test_postgres_url_gets_async_driver() -> None:
    settings = Settings(database_url="postgresql://u:p@db/pluggably")
    assert settings.resolved_database_url == "postgresql+asyncpg://u:p@db/pluggably"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PLUGGABLY_PORT": "eighty"}, "PLUGGABLY_PORT: Input should be a valid integer"),
        ({"PLUGGABLY_PORT": "70000"}, "PLUGGABLY_PORT: Input should be less than or equal"),
        ({"PLUGGABLY_DATABASE_URL": "mysql://x"}, "PLUGGABLY_DATABASE_URL: must be a sqlite"),
        ({"PLUGGABLY_LOG_LEVEL": "loud"}, "PLUGGABLY_LOG_LEVEL: Input should be"),
        ({"PLUGGABLY_ADMIN_KEY": "short"}, "admin_key must be at least 16 characters"),
        (
            {"PLUGGABLY_LOCAL_ONLY": "true", "PLUGGABLY_HOST": "0.0.0.0"},
            "local_only is refused while host='0.0.0.0'",
        ),
    ],
)
def test_bad_values_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_key_file_inside_data_dir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="secret_key_file must be outside data_dir"):
        load_settings(data_dir=tmp_path, secret_key_file=tmp_path / "keys" / "secret.key")


def test_unknown_yaml_key_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("prot: 1\n")
    monkeypatch.setenv("PLUGGABLY_CONFIG", str(config))
    with pytest.raises(ConfigError, match="PLUGGABLY_PROT: Extra inputs are not permitted"):
        load_settings()


def test_malformed_yaml_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("port: [1, \n")
    monkeypatch.setenv("PLUGGABLY_CONFIG", str(config))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith("PLUGGABLY_CONFIG:")
    assert "\n" not in str(info.value)
