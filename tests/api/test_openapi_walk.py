"""Walk every operation of the running app's OpenAPI schema with bad input and
check that each failure has the envelope and is documented."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import ADMIN_KEY, assert_envelope

PUBLIC = {
    "/health",
    "/ready",
    "/version",
    "/v1/users/register",
    "/v1/users/login",
    "/v1/artifacts/{artifact_id}",  # the signed link is the credential
    # The console's sign-in, first-run setup and what its sign-in page needs to know.
    "/ui/api/bootstrap",
    "/ui/api/session",
    "/ui/api/setup",
}


# The compatibility surfaces answer in their own APIs' error shapes; their own tests
# (test_openai_compat.py, test_anthropic_compat.py) walk them.
COMPAT_PREFIXES = ("/openai/", "/anthropic/", "/api/")
OLLAMA_ROOT = "/"  # "Ollama is running", plain text (tests/surfaces/ollama/)


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
        and not path.startswith(COMPAT_PREFIXES)
        and path != OLLAMA_ROOT
    ]


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "does-not-exist", path)


async def test_every_operation_documents_the_error_envelope(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "ErrorEnvelope" in spec["components"]["schemas"]
    for method, path, op in _operations(spec):
        for status in ("422", "500"):
            ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/ErrorEnvelope"), (method, path, status)
        if path not in PUBLIC and path != "/metrics":
            assert "401" in op["responses"], (method, path)


async def test_every_operation_answers_bad_input_with_the_envelope(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    operations = _operations(spec)
    assert len(operations) >= 5
    for method, path, op in operations:
        url = _fill(path)
        if path not in PUBLIC:
            assert_envelope(await client.request(method, url), 401, "unauthorized")
            bad = {"Authorization": "Bearer not-a-real-key"}
            assert_envelope(await client.request(method, url, headers=bad), 401, "unauthorized")
        # Garbage query parameters and a malformed body never produce a 5xx or another shape.
        params = {
            p["name"]: "\x00not-valid" for p in op.get("parameters", []) if p["in"] == "query"
        }
        response = await client.request(
            method,
            url,
            params=params,
            content=b"{not json",
            headers={"X-API-Key": ADMIN_KEY, "content-type": "application/json"},
        )
        assert response.status_code < 500, (method, path, response.text)
        if response.status_code >= 400:
            detail = response.json()["detail"]
            assert detail["request_id"] == response.headers["x-request-id"]
        # The wrong method on the same path.
        other = "PUT" if method != "PUT" else "PATCH"
        if other.lower() not in spec["paths"][path]:
            assert_envelope(await client.request(other, url), 405, "method_not_allowed")
