"""`pluggably secrets rotate`: a new active key, credentials re-sealed, tokens and
logins still valid, and an unreadable ciphertext reported — never dropped."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select, update

from pluggably.app import create_app
from pluggably.auth.principal import ALL_SCOPES, Principal
from pluggably.config import Settings
from pluggably.credentials.models import ProviderCredential
from pluggably.errors import CredentialUnreadable
from pluggably.users.models import ApiToken
from tests.conftest import client_for, make_settings, new_user, running
from tests.serving.test_serve import BIN

pytestmark = pytest.mark.slow
OPENAI_KEY = "sk-rotation-test-key-000000042"


def _rotate(settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "PLUGGABLY_DATA_DIR": str(settings.data_dir),
        "PLUGGABLY_SECRET_KEY_FILE": str(settings.secret_key_file),
        "PLUGGABLY_DATABASE_URL": settings.resolved_database_url,
        "PLUGGABLY_BUNDLED_MODEL": "false",
    }
    return subprocess.run(
        [str(BIN), "secrets", "rotate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_rotate_keeps_everything_usable(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url)
    app = create_app(settings)
    async with running(app), client_for(app) as client:
        login = await new_user(client, "rita")
        api = {
            "X-API-Key": (
                await client.post("/v1/users/tokens", json={"name": "r"}, headers=login)
            ).json()["token"]
        }
        await client.post(
            "/v1/users/provider-keys",
            json={"provider": "openai", "api_key": OPENAI_KEY},
            headers=api,
        )
        old_key = app.state.container.keyring.active.key_id

    result = _rotate(settings)
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 1 credentials" in result.stdout
    assert len(settings.secret_key_file.read_text().split()) == 2
    assert settings.secret_key_file.stat().st_mode & 0o777 == 0o600

    app = create_app(settings)
    async with running(app), client_for(app) as client:
        container = app.state.container
        new_key = container.keyring.active.key_id
        assert new_key != old_key
        me = await client.get("/v1/users/me", headers=login)  # login token signed by the old key
        assert me.status_code == 200
        assert (await client.get("/v1/users/me", headers=api)).status_code == 200
        async with container.db.session() as session:
            token = await session.scalar(select(ApiToken))
            assert token is not None
            assert token.key_id == new_key  # moved to the active key on use
            row = await session.scalar(select(ProviderCredential))
            assert row is not None
            assert row.key_id == new_key
            principal = Principal(user_id=me.json()["id"], role="user", scopes=ALL_SCOPES, via="t")
            assert await container.credentials.resolve(session, principal, "rita", "openai") == {
                "api_key": OPENAI_KEY
            }
            # Tamper with the sealed value: it is refused loudly, not skipped.
            await session.execute(
                update(ProviderCredential).values(ciphertext=row.ciphertext[:-8] + "AAAAAAAA")
            )
        async with container.db.session() as session:
            with pytest.raises(CredentialUnreadable, match="integrity check"):
                await container.credentials.resolve(session, principal, "rita", "openai")

    result = _rotate(settings)
    assert result.returncode == 1
    assert "could not be decrypted" in result.stderr
    app = create_app(settings)
    async with running(app), client_for(app) as client:
        listed = (await client.get("/v1/users/provider-keys", headers=api)).json()
        assert [k["provider"] for k in listed] == ["openai"]  # still there, not dropped


async def test_server_keys_only_for_allowed_users(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(
        tmp_path,
        database_url,
        providers={"openai": {"api_key": "sk-server-wide-key-0001"}},
        server_keys_allowed=["@admins", "bob"],
    )
    app = create_app(settings)
    async with running(app), client_for(app) as client:
        service = app.state.container.credentials
        carol_auth = await new_user(client, "carol")
        carol_id = (await client.get("/v1/users/me", headers=carol_auth)).json()["id"]
        carol = Principal(user_id=carol_id, role="user", scopes=ALL_SCOPES, via="t")
        bob = Principal(user_id="usr_bob", role="user", scopes=ALL_SCOPES, via="t")
        admin = Principal(
            user_id=app.state.container.admin_user_id, role="admin", scopes=ALL_SCOPES, via="t"
        )
        async with app.state.container.db.session() as session:
            assert await service.resolve(session, carol, "carol", "openai") is None
            assert await service.resolve(session, bob, "bob", "openai") == {
                "api_key": "sk-server-wide-key-0001"
            }
            assert await service.resolve(session, admin, "admin", "openai") is not None
            assert await service.resolve(session, bob, "bob", "anthropic") is None
        await client.post(
            "/v1/users/provider-keys",
            json={"provider": "openai", "api_key": "sk-carols-own-key-0002"},
            headers=carol_auth,
        )
        async with app.state.container.db.session() as session:
            assert await service.resolve(session, carol, "carol", "openai") == {
                "api_key": "sk-carols-own-key-0002"
            }
