"""Provider credentials: validation per provider, sealing, masking, replacement."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pluggably.credentials.models import ProviderCredential
from tests.conftest import assert_envelope, new_user

SERVICE_ACCOUNT = {
    "type": "service_account",
    "project_id": "demo",
    "private_key_id": "0123456789abcdef0123",
    "private_key": (
        "-----BEGIN PRIVATE KEY-----\nMIIEvAIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
    ),
    "client_email": "bot@demo.iam.gserviceaccount.com",
}


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"provider": "openai", "api_key": "short"}, "api_key", "8-8192 printable ASCII"),
        ({"provider": "openai", "api_key": "sk has spaces in"}, "api_key", "without spaces"),
        ({"provider": "openai"}, "api_key", "api_key is required"),
        (
            {"provider": "azure", "credential_type": "api_key", "api_key": "abcdefgh12345678"},
            "credential_type",
            "azure accepts endpoint_key",
        ),
        (
            {"provider": "azure", "credential_type": "endpoint_key", "api_key": "abcdefgh12345678"},
            "endpoint",
            "endpoint is required",
        ),
        (
            {
                "provider": "azure",
                "credential_type": "endpoint_key",
                "api_key": "abcdefgh12345678",
                "endpoint": "http://x.openai.azure.com",
            },
            "endpoint",
            "https://",
        ),
        (
            {
                "provider": "azure",
                "credential_type": "endpoint_key",
                "api_key": "abcdefgh12345678",
                "endpoint": "https://169.254.169.254/latest",
            },
            "endpoint",
            "public host",
        ),
        (
            {
                "provider": "azure",
                "credential_type": "endpoint_key",
                "api_key": "abcdefgh12345678",
                "endpoint": "https://localhost:8080",
            },
            "endpoint",
            "public host",
        ),
        *(
            (
                {
                    "provider": "azure",
                    "credential_type": "endpoint_key",
                    "api_key": "abcdefgh12345678",
                    "endpoint": f"https://{host}/",
                },
                "endpoint",
                "public host",
            )
            # Spellings of 127.0.0.1 and private ranges that the C resolver accepts.
            for host in ("127.1", "2130706433", "0x7f000001", "0177.0.0.1", "10.0.0.7", "[::1]")
        ),
        (
            {
                "provider": "google",
                "credential_type": "service_account",
                "service_account_json": "{not json",
            },
            "service_account_json",
            "not JSON",
        ),
        (
            {
                "provider": "google",
                "credential_type": "service_account",
                "service_account_json": json.dumps({"type": "service_account"}),
            },
            "service_account_json",
            "lacks project_id",
        ),
    ],
)
async def test_invalid_credentials_are_refused(
    client: httpx.AsyncClient, body: dict[str, str], field: str, text: str
) -> None:
    auth = await new_user(client, "val")
    response = await client.post("/v1/users/provider-keys", json=body, headers=auth)
    detail = assert_envelope(response, 422, "validation_error")
    assert detail["details"][0]["loc"] == ["body", field]
    assert text in detail["message"]
    assert "abcdefgh" not in response.text


async def test_unknown_provider_is_unsupported(client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "val")
    body = {"provider": "nowhere", "api_key": "sk-abcdefgh1234"}
    response = await client.post("/v1/users/provider-keys", json=body, headers=auth)
    detail = assert_envelope(response, 400, "unsupported_provider")
    assert "openai" in detail["message"]
    assert "abcdefgh" not in response.text


async def test_concurrent_stores_keep_one_credential(client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "racer")
    bodies = [{"provider": "xai", "api_key": f"xai-key-number-{i:04d}"} for i in range(5)]
    responses = await asyncio.gather(
        *(client.post("/v1/users/provider-keys", json=b, headers=auth) for b in bodies)
    )
    assert [r.status_code for r in responses] == [201] * 5
    listed = (await client.get("/v1/users/provider-keys", headers=auth)).json()
    assert len(listed) == 1


async def test_each_credential_type_is_stored_masked_and_sealed(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    auth = await new_user(client, "keys")
    secrets = {
        "anthropic": ("sk-ant-api03-SECRETVALUE-9876", "sk-…9876"),
        "azure": ("azurekey-SECRETVALUE-5555", "azu…5555"),
    }
    bodies = [
        {"provider": "anthropic", "api_key": secrets["anthropic"][0], "label": "personal"},
        {
            "provider": "azure",
            "credential_type": "endpoint_key",
            "api_key": secrets["azure"][0],
            "endpoint": "https://myres.openai.azure.com/",
        },
        {
            "provider": "google",
            "credential_type": "service_account",
            "service_account_json": json.dumps(SERVICE_ACCOUNT),
        },
    ]
    for body in bodies:
        response = await client.post("/v1/users/provider-keys", json=body, headers=auth)
        assert response.status_code == 201, response.text
    listed = (await client.get("/v1/users/provider-keys", headers=auth)).json()
    by_provider = {k["provider"]: k for k in listed}
    assert sorted(by_provider) == ["anthropic", "azure", "google"]
    assert by_provider["anthropic"]["masked_key"] == secrets["anthropic"][1]
    assert by_provider["anthropic"]["label"] == "personal"
    assert by_provider["azure"]["masked_key"] == secrets["azure"][1]
    assert by_provider["google"]["masked_key"].startswith("bot@demo.iam")
    assert by_provider["google"]["credential_type"] == "service_account"
    text = json.dumps(listed)
    for secret, _ in secrets.values():
        assert secret not in text
    assert "PRIVATE KEY" not in text

    container = app.state.container
    async with container.db.session() as session:
        rows = (await session.execute(select(ProviderCredential))).scalars().all()
        assert all(r.key_id == container.keyring.active.key_id for r in rows)
        assert all(secrets["anthropic"][0] not in r.ciphertext for r in rows)
        me = (await client.get("/v1/users/me", headers=auth)).json()
        from pluggably.auth.principal import ALL_SCOPES, Principal

        principal = Principal(user_id=me["id"], role="user", scopes=ALL_SCOPES, via="test")
        opened = await container.credentials.resolve(session, principal, "keys", "azure")
        assert opened == {
            "api_key": secrets["azure"][0],
            "endpoint": "https://myres.openai.azure.com",
        }


async def test_post_replaces_and_delete_removes(client: httpx.AsyncClient) -> None:
    auth = await new_user(client, "rotator")
    for key in ("gsk_first_key_0001", "gsk_second_key_0002"):
        response = await client.post(
            "/v1/users/provider-keys", json={"provider": "groq", "api_key": key}, headers=auth
        )
        assert response.status_code == 201
    listed = (await client.get("/v1/users/provider-keys", headers=auth)).json()
    assert [k["masked_key"] for k in listed] == ["gsk…0002"]
    assert (await client.delete("/v1/users/provider-keys/groq", headers=auth)).status_code == 200
    assert_envelope(
        await client.delete("/v1/users/provider-keys/groq", headers=auth), 404, "not_found"
    )
    assert (await client.get("/v1/users/provider-keys", headers=auth)).json() == []
