"""Upstream error messages are quoted to users and stored in request records: never with
a fragment of the key the call used in them (issue #15).

Vendors echo the key they refused, whole or in part ("Incorrect API key provided:
sk-…"); a message may be long enough that the key straddles the cut made for quoting.
Every surface (native, OpenAI- and Anthropic-compatible; JSON and streams) and the
stored record are checked for any 8-character run of each key."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pluggably.app import create_app
from pluggably.generation.models import RequestRecord
from tests.conftest import client_for, make_settings, new_user, running
from tests.fixtures.anthropic_sim import AnthropicSim
from tests.fixtures.gemini_sim import GeminiSim
from tests.fixtures.openai_sim import OpenAISim

RUN = 8  # no run of this many characters of a key may reach a user
QUOTE_LIMIT = 300  # how much of an upstream message is quoted


def _key(tag: str) -> str:
    return f"{tag}{secrets.token_hex(24)}"


SERVER_KEYS = {p: _key(f"srv{p[:3]}") for p in ("openai", "anthropic", "google")}
ENDPOINT_KEY = _key("endpt")


def leaked(text: str, key: str) -> str | None:
    """The first run of ``RUN`` characters of ``key`` that ``text`` holds."""
    return next(
        (key[i : i + RUN] for i in range(len(key) - RUN + 1) if key[i : i + RUN] in text), None
    )


def echoes(key: str) -> dict[str, str]:
    """Ways a vendor's error message quotes a key."""
    lead = "Incorrect API key provided: "
    words = "the key you sent was refused by this vendor, please check it "
    padding = (words * 10)[: QUOTE_LIMIT - len(lead) - 20]
    return {
        "whole": f"{lead}{key}. You can find your API key at https://example.org/keys.",
        "straddling the cut": f"{lead}{padding}{key} and more words after it.",
        "missing a few characters": f"{lead}{key[:-3]}. Check it.",
        "missing its start": f"{lead}…{key[5:]}",
    }


@dataclass(frozen=True)
class Case:
    provider: str
    model: str
    credential: str  # user | server | endpoint


CASES = [
    Case("openai", "openai:gpt-4o-mini", "user"),
    Case("openai", "openai:gpt-4o-mini", "server"),
    Case("mine", "mine:gpt-4o-mini", "endpoint"),
    Case("anthropic", "anthropic:claude-3-5-haiku-latest", "user"),
    Case("anthropic", "anthropic:claude-3-5-haiku-latest", "server"),
    Case("google", "google:gemini-2.0-flash", "user"),
    Case("google", "google:gemini-2.0-flash", "server"),
]


@pytest.fixture
async def app(
    tmp_path: Path,
    database_url: str,
    openai_sim: OpenAISim,
    anthropic_sim: AnthropicSim,
    gemini_sim: GeminiSim,
) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        tmp_path,
        database_url,
        providers={
            "openai": {"base_url": openai_sim.base_url, "api_key": SERVER_KEYS["openai"]},
            "anthropic": {"base_url": anthropic_sim.url, "api_key": SERVER_KEYS["anthropic"]},
            "google": {"base_url": gemini_sim.url, "api_key": SERVER_KEYS["google"]},
        },
        endpoints={"mine": {"base_url": openai_sim.base_url, "api_key": ENDPOINT_KEY}},
        server_keys_allowed=["*"],
    )
    async with running(create_app(settings)) as application:
        yield application


def surfaces(model: str) -> list[tuple[str, dict[str, Any]]]:
    chat = [{"role": "user", "content": "hello"}]
    native = {"model": model, "input": {"prompt": "hello"}, "wait": True}
    openai = {"model": model, "messages": chat}
    anthropic = {"model": model, "max_tokens": 16, "messages": chat}
    return [
        (path, {**body, "stream": stream})
        for path, body in (
            ("/v1/generate", native),
            ("/openai/v1/chat/completions", openai),
            ("/anthropic/v1/messages", anthropic),
        )
        for stream in (False, True)
    ]


async def _answer(client: httpx.AsyncClient, path: str, body: Any, auth: Any) -> str:
    async with client.stream("POST", path, json=body, headers=auth) as response:
        text = (await response.aread()).decode()
    # The upstream's refusal was quoted: the scenario really went through the error path.
    assert "refused your credential" in text, (path, body["stream"], text)
    return text


def _failer(
    case: Case, openai_sim: OpenAISim, anthropic_sim: AnthropicSim, gemini_sim: GeminiSim
) -> Callable[[str], None]:
    if case.provider == "anthropic":
        return lambda msg: anthropic_sim.fail_next(status=401, message=msg)
    if case.provider == "google":
        return lambda msg: gemini_sim.fail_next(status=401, message=msg)
    error = {"type": "invalid_request_error", "code": "invalid_api_key", "param": None}
    return lambda msg: openai_sim.fail_next(status=401, body={"error": {**error, "message": msg}})


async def _stored(app: FastAPI) -> list[dict[str, Any]]:
    """Every request row, as the database holds it."""
    container = app.state.container
    await container.records.flush()  # what is queued is written now
    async with container.db.session() as session:
        rows = (await session.execute(select(RequestRecord))).scalars().all()
    return [{c.name: getattr(r, c.name) for c in RequestRecord.__table__.columns} for r in rows]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.provider}-{c.credential}")
async def test_echoed_keys_never_reach_users_or_records(
    app: FastAPI,
    case: Case,
    openai_sim: OpenAISim,
    anthropic_sim: AnthropicSim,
    gemini_sim: GeminiSim,
) -> None:
    fail = _failer(case, openai_sim, anthropic_sim, gemini_sim)
    async with client_for(app) as client:
        auth = await new_user(client, "keyholder")
        if case.credential == "user":
            key = _key("user")
            body = {"provider": case.provider, "credential_type": "api_key", "api_key": key}
            stored = await client.post("/v1/users/provider-keys", json=body, headers=auth)
            assert stored.status_code == 201, stored.text
        else:
            key = ENDPOINT_KEY if case.credential == "endpoint" else SERVER_KEYS[case.provider]
        for how, message in echoes(key).items():
            for path, body in surfaces(case.model):
                fail(message)
                text = await _answer(client, path, body, auth)
                assert leaked(text, key) is None, (how, path, body["stream"], text)
        rows = await _stored(app)
        assert len(rows) == len(echoes(key)) * len(surfaces(case.model))
        for row in rows:
            assert row["error_code"] == "upstream_error", row
            assert leaked(repr(row), key) is None, row
            shown = await client.get(f"/v1/requests/{row['id']}", headers=auth)
            assert shown.status_code == 200, shown.text
            assert "refused your credential" in shown.text
            assert leaked(shown.text, key) is None, shown.text


async def test_keys_echoed_in_an_error_event_mid_stream_are_redacted(
    app: FastAPI, anthropic_sim: AnthropicSim
) -> None:
    """An error the upstream sends after its 200 (Anthropic's ``event: error``) is quoted
    in the stream's error frame and the record, like an HTTP error."""
    key = SERVER_KEYS["anthropic"]
    model = "anthropic:claude-3-5-haiku-latest"
    async with client_for(app) as client:
        auth = await new_user(client, "streamer")
        for message in echoes(key).values():
            for path, body in surfaces(model):
                if not body["stream"]:
                    continue
                anthropic_sim.error_event_next(after_deltas=1, message=message)
                async with client.stream("POST", path, json=body, headers=auth) as response:
                    text = (await response.aread()).decode()
                assert "is overloaded" in text, text
                assert leaked(text, key) is None, (path, text)
        rows = await _stored(app)
        assert {row["error_code"] for row in rows} == {"backend_unavailable"}
        assert all(leaked(repr(row), key) is None for row in rows)


def test_a_service_accounts_public_fields_are_not_redacted() -> None:
    """Only a credential's secret fields are redacted: a service account's project id,
    client email and token URI are quoted as they are (redacting every 8-character run
    of them wiped any "https://" and project name out of Google's messages)."""
    from pluggably.errors import UpstreamError
    from pluggably.generation.plan import scrubbed

    private_key = "-----BEGIN PRIVATE KEY-----\n" + secrets.token_hex(64) + "\n-----END"
    account = {
        "credential_type": "service_account",
        "service_account": {
            "type": "service_account",
            "project_id": "my-proj-123",
            "private_key_id": secrets.token_hex(20),
            "private_key": private_key,
            "client_email": "bot@my-proj-123.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token",
        },
    }
    message = (
        "Permission denied on project my-proj-123 for bot@my-proj-123.iam.gserviceaccount.com; "
        "see https://cloud.google.com/docs/authentication. Key: " + private_key[28:60]
    )
    quoted = scrubbed(UpstreamError(message), account).message
    assert quoted.startswith(message[: message.index("Key: ") + 5])
    assert private_key[28:60] not in quoted
    assert quoted.endswith("[redacted]")
