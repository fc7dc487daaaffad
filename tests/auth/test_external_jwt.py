"""External identity-provider JWTs: HS256 secret, RS256 PEM key, ES256 JWKS file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pluggably.app import create_app
from pluggably.config import ExternalJwtSettings
from tests.conftest import assert_envelope, client_for, make_settings, running

ISSUER, AUDIENCE = "https://id.example.org/", "pluggably"
HS_SECRET = "an-hs256-secret-of-decent-length-123"


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-42", "iat": now, "exp": now + 300}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


async def _client(tmp_path: Path, database_url: str, **jwt_settings: Any):  # type: ignore[no-untyped-def]
    settings = make_settings(
        tmp_path,
        database_url,
        external_jwt=ExternalJwtSettings(issuer=ISSUER, audience=AUDIENCE, **jwt_settings),
    )
    app = create_app(settings)
    return app, client_for(app)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_hs256_with_auto_provision(tmp_path: Path, database_url: str) -> None:
    app, client = await _client(
        tmp_path, database_url, secret=HS_SECRET, algorithms=["HS256"], auto_provision=True
    )
    async with running(app), client:
        token = jwt.encode(_claims(name="Zed"), HS_SECRET, algorithm="HS256")
        first = await client.get("/v1/users/me", headers=_bearer(token))
        assert first.status_code == 200, first.text
        assert first.json()["display_name"] == "Zed"
        assert first.json()["role"] == "user"
        again = await client.get("/v1/users/me", headers=_bearer(token))
        assert again.json()["id"] == first.json()["id"]

        cases = {
            "no sub": jwt.encode(_claims(sub=None), HS_SECRET, algorithm="HS256"),
            "audience": jwt.encode(_claims(aud="other"), HS_SECRET, algorithm="HS256"),
            "expired": jwt.encode(
                _claims(exp=int(time.time()) - 120), HS_SECRET, algorithm="HS256"
            ),
            "no exp": jwt.encode(_claims(exp=None), HS_SECRET, algorithm="HS256"),
            "signature": jwt.encode(_claims(), HS_SECRET + "x", algorithm="HS256"),
        }
        messages = {}
        for name, bad in cases.items():
            response = await client.get("/v1/users/me", headers=_bearer(bad))
            messages[name] = assert_envelope(response, 401, "unauthorized")["message"]
        assert "'sub'" in messages["no sub"]
        assert "audience" in messages["audience"]
        assert "expired" in messages["expired"]
        assert "'exp'" in messages["no exp"]
        # Another issuer is not ours to judge: it is simply not a valid credential.
        foreign = jwt.encode(_claims(iss="https://evil.example/"), HS_SECRET, algorithm="HS256")
        assert_envelope(
            await client.get("/v1/users/me", headers=_bearer(foreign)), 401, "unauthorized"
        )


async def test_without_auto_provision_unknown_subjects_are_refused(
    tmp_path: Path, database_url: str
) -> None:
    app, client = await _client(tmp_path, database_url, secret=HS_SECRET, algorithms=["HS256"])
    async with running(app), client:
        token = jwt.encode(_claims(), HS_SECRET, algorithm="HS256")
        detail = assert_envelope(
            await client.get("/v1/users/me", headers=_bearer(token)), 401, "unauthorized"
        )
        assert "No Pluggably account" in detail["message"]


async def test_rs256_public_key_file(tmp_path: Path, database_url: str) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_file = tmp_path / "idp.pem"
    key_file.write_bytes(pem)
    app, client = await _client(
        tmp_path, database_url, public_key_file=key_file, auto_provision=True
    )
    async with running(app), client:
        good = jwt.encode(_claims(), private, algorithm="RS256")
        assert (await client.get("/v1/users/me", headers=_bearer(good))).status_code == 200
        # An HS256 token "signed" with the public key must not pass (algorithm confusion).
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(_claims()).encode())
        mac = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        confused = f"{header}.{payload}.{_b64(mac)}"
        assert_envelope(
            await client.get("/v1/users/me", headers=_bearer(confused)), 401, "unauthorized"
        )
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode(_claims(), other, algorithm="RS256")
        assert_envelope(
            await client.get("/v1/users/me", headers=_bearer(forged)), 401, "unauthorized"
        )


async def test_es256_jwks_file(tmp_path: Path, database_url: str) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    jwk.update(kid="k1", alg="ES256", use="sig")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    app, client = await _client(
        tmp_path, database_url, jwks_file=jwks, algorithms=["ES256"], auto_provision=True
    )
    async with running(app), client:
        good = jwt.encode(_claims(), private, algorithm="ES256", headers={"kid": "k1"})
        assert (await client.get("/v1/users/me", headers=_bearer(good))).status_code == 200
        unknown_kid = jwt.encode(_claims(), private, algorithm="ES256", headers={"kid": "k9"})
        detail = assert_envelope(
            await client.get("/v1/users/me", headers=_bearer(unknown_kid)), 401, "unauthorized"
        )
        assert "unknown signing key" in detail["message"]


def test_key_source_must_be_unambiguous() -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        ExternalJwtSettings(issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ValueError, match="HS256 needs a secret"):
        ExternalJwtSettings(
            issuer=ISSUER, audience=AUDIENCE, jwks_file=Path("x"), algorithms=["HS256"]
        )


async def test_login_tokens_still_work_beside_external_ones(
    tmp_path: Path, database_url: str
) -> None:
    from tests.conftest import new_user

    app, client = await _client(tmp_path, database_url, secret=HS_SECRET, algorithms=["HS256"])
    async with running(app), client:
        auth = await new_user(client, "local-user")
        assert (await client.get("/v1/users/me", headers=auth)).status_code == 200


async def test_algorithm_that_misfits_the_key_is_401(tmp_path: Path, database_url: str) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_file = tmp_path / "idp.pem"
    key_file.write_bytes(pem)
    app, client = await _client(
        tmp_path, database_url, public_key_file=key_file, algorithms=["RS256", "ES256"]
    )
    async with running(app), client:
        ec_token = jwt.encode(_claims(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
        response = await client.get("/v1/users/me", headers=_bearer(ec_token))
        assert_envelope(response, 401, "unauthorized")
        garbage = await client.get("/v1/users/me", headers=_bearer("eyJ.not-a.jwt"))
        assert_envelope(garbage, 401, "unauthorized")
