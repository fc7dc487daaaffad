"""Artifacts over HTTP: signed expiring links, key rotation, restarts, expiry
cleanup, and the local and S3-compatible stores (S3 against moto's server)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI
from starlette.routing import NoMatchFound

from pluggably.api import artifacts as artifacts_api
from pluggably.app import create_app
from pluggably.artifacts.models import Artifact
from pluggably.artifacts.service import ArtifactInfo, ArtifactService
from pluggably.artifacts.stores import ArtifactStore, LocalArtifactStore, S3ArtifactStore
from pluggably.config import Settings
from pluggably.db import utcnow
from pluggably.errors import ConfigError
from pluggably.keyring import Keyring, MasterKey
from pluggably.periodic import every
from tests.conftest import assert_envelope, client_for, running

ROUTE = "/v1/artifacts/{artifact_id}"
PNG = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(2_500_000)  # spans several read chunks


class Clock:
    """The service's notion of now, moved by the test instead of by sleeping."""

    def __init__(self) -> None:
        self.now = utcnow().replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Harness:
    app: FastAPI
    service: ArtifactService

    async def save(self, data: bytes = PNG, **kwargs: Any) -> ArtifactInfo:
        container = self.app.state.container
        values: dict[str, Any] = {"type": "image", "content_type": "image/png", **kwargs}
        async with container.db.session() as session:
            info = await self.service.save(
                session, owner_id=container.admin_user_id, data=data, **values
            )
        assert isinstance(info, ArtifactInfo)
        return info

    async def row(self, artifact_id: str) -> Artifact | None:
        async with self.app.state.container.db.session() as session:
            return await session.get(Artifact, artifact_id)


@asynccontextmanager
async def artifact_app(
    settings: Settings,
    clock: Clock,
    *,
    store: ArtifactStore | None = None,
    keyring: Keyring | None = None,
) -> AsyncIterator[Harness]:
    """The real app plus the artifacts route, wired the way the lifespan will be."""
    app = create_app(settings)
    # Until create_app includes the route itself (then this is a no-op).
    try:
        app.url_path_for("download_artifact", artifact_id="x")
    except NoMatchFound:
        app.include_router(artifacts_api.router)
    async with running(app):
        container = app.state.container
        # Until a migration creates the table (then this is a no-op).
        async with container.db.engine.begin() as conn:
            await conn.run_sync(Artifact.__table__.create, checkfirst=True)
        container.artifacts = ArtifactService(
            store or LocalArtifactStore(settings.artifacts_dir),
            keyring or container.keyring,
            None,
            timedelta(hours=1),
            clock=clock,
        )
        yield Harness(app, container.artifacts)


def with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query: dict[str, str | None] = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    encoded = "&".join(f"{k}={v}" for k, v in query.items() if v is not None)
    return f"{parts.path}?{encoded}"


def stored_files(settings: Settings) -> list[Path]:
    return sorted(p for p in settings.artifacts_dir.rglob("*") if p.is_file())


async def test_save_then_download(settings: Settings) -> None:
    clock = Clock()
    async with artifact_app(settings, clock) as h, client_for(h.app) as client:
        info = await h.save(request_id="req_1")
        assert info.id.startswith("art_")
        assert (info.type, info.content_type, info.size_bytes) == ("image", "image/png", len(PNG))
        assert info.expires_at == clock.now + timedelta(hours=1)
        assert info.url.startswith(f"/v1/artifacts/{info.id}?expires=")

        r = await client.get(info.url)  # no credential: the link is the credential
        assert r.status_code == 200
        assert r.content == PNG
        assert r.headers["content-type"] == "image/png"
        assert r.headers["content-length"] == str(len(PNG))
        assert r.headers["cache-control"] == "private, max-age=3600"
        assert r.headers["content-disposition"] == f"inline; filename={info.id}.png"
        assert r.headers["x-content-type-options"] == "nosniff"

        row = await h.row(info.id)
        assert row is not None
        assert row.backend == "local"
        assert row.sha256 == hashlib.sha256(PNG).hexdigest()
        assert row.storage_key == f"{clock.now:%Y/%m/%d}/{info.id}.png"
        # Only the finished file: the temporary one was renamed into place.
        assert stored_files(settings) == [settings.artifacts_dir / row.storage_key]

        clock.advance(minutes=59)
        r = await client.get(info.url)
        assert r.headers["cache-control"] == "private, max-age=60"


async def test_save_refuses_what_it_cannot_serve_safely(settings: Settings) -> None:
    async with artifact_app(settings, Clock()) as h:
        with pytest.raises(ValueError, match="content type"):
            await h.save(content_type="text/html\r\nSet-Cookie: a=b")
        with pytest.raises(ValueError, match="artifact type"):
            await h.save(type="video")
        with pytest.raises(ValueError, match="ttl"):
            await h.save(ttl=timedelta(seconds=-1))
        assert stored_files(settings) == []


async def test_tampered_or_missing_signature_is_forbidden(settings: Settings) -> None:
    async with artifact_app(settings, Clock()) as h, client_for(h.app) as client:
        info = await h.save()
        other = await h.save(b"other")
        query = parse_qs(urlsplit(info.url).query)
        sig, expires = query["sig"][0], int(query["expires"][0])
        flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
        bad_urls = [
            with_query(info.url, sig=flipped),
            with_query(info.url, expires=str(expires + 3600)),  # stretching the expiry
            with_query(info.url, sig=None),
            with_query(info.url, expires=None),
            with_query(info.url, sig=""),
            with_query(info.url, sig="zz" * 32),
            # A valid signature belongs to one artifact only.
            with_query(other.url.replace(other.id, info.id)),
        ]
        for url in bad_urls:
            assert_envelope(await client.get(url), 403, "forbidden")
        assert (await client.get(info.url)).status_code == 200


async def test_expired_link_is_gone(settings: Settings) -> None:
    clock = Clock()
    async with artifact_app(settings, clock) as h, client_for(h.app) as client:
        info = await h.save(ttl=timedelta(minutes=5))
        clock.advance(minutes=5)
        assert_envelope(await client.get(info.url), 410, "artifact_expired")


async def test_unknown_artifact_is_not_found(settings: Settings) -> None:
    clock = Clock()
    async with artifact_app(settings, clock) as h, client_for(h.app) as client:
        url = h.service.url_for("art_000000000000000000000000", clock.now + timedelta(hours=1))
        assert_envelope(await client.get(url), 404, "artifact_not_found")

        # The row survives but its bytes were removed behind the server's back.
        info = await h.save()
        for path in stored_files(settings):
            path.unlink()
        assert_envelope(await client.get(info.url), 404, "artifact_not_found")


async def test_links_signed_by_a_retired_key_still_verify(settings: Settings) -> None:
    old, new = MasterKey(secrets.token_bytes(32)), MasterKey(secrets.token_bytes(32))
    clock = Clock()
    async with artifact_app(settings, clock, keyring=Keyring([old])) as h:
        before = await h.save()
    async with artifact_app(settings, clock, keyring=Keyring([old, new])) as h:
        after = await h.save(b"after rotation")
        async with client_for(h.app) as client:
            assert (await client.get(before.url)).content == PNG
            assert (await client.get(after.url)).content == b"after rotation"
    assert parse_qs(urlsplit(before.url).query)["sig"] != parse_qs(urlsplit(after.url).query)["sig"]
    # Once the retired key leaves the keyring, its links stop working.
    async with (
        artifact_app(settings, clock, keyring=Keyring([new])) as h,
        client_for(h.app) as client,
    ):
        assert_envelope(await client.get(before.url), 403, "forbidden")
        assert (await client.get(after.url)).status_code == 200


async def test_links_survive_a_restart(settings: Settings) -> None:
    clock = Clock()
    async with artifact_app(settings, clock) as h:
        info = await h.save()
    # A new app: new engine, keyring read back from the key file, metadata from the DB.
    async with artifact_app(settings, clock) as h, client_for(h.app) as client:
        r = await client.get(info.url)
        assert r.status_code == 200
        assert r.content == PNG


async def test_cleanup_deletes_expired_rows_and_files(settings: Settings) -> None:
    clock = Clock()
    async with artifact_app(settings, clock) as h, client_for(h.app) as client:
        short = await h.save(b"short-lived", ttl=timedelta(minutes=10))
        long = await h.save(b"long-lived")
        short_row, long_row = await h.row(short.id), await h.row(long.id)
        assert short_row is not None
        assert long_row is not None
        clock.advance(minutes=11)

        async with h.app.state.container.db.session() as session:
            assert await h.service.cleanup_expired(session) == 1
        assert await h.row(short.id) is None
        assert stored_files(settings) == [settings.artifacts_dir / long_row.storage_key]
        assert_envelope(await client.get(short.url), 410, "artifact_expired")
        assert (await client.get(long.url)).content == b"long-lived"

        async with h.app.state.container.db.session() as session:
            assert await h.service.cleanup_expired(session) == 0


async def test_cleanup_loop_expires_in_the_background(settings: Settings) -> None:
    clock = Clock()
    async with artifact_app(settings, clock) as h:
        info = await h.save(ttl=timedelta(seconds=30))
        clock.advance(seconds=31)
        db = h.app.state.container.db
        task = asyncio.create_task(every(0.01, "artifact_cleanup", partial(h.service.expire, db)))
        try:
            async with asyncio.timeout(10):
                while await h.row(info.id) is not None:
                    await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert stored_files(settings) == []


async def test_local_store_keeps_keys_inside_its_root(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    store = LocalArtifactStore(root)
    for key in ("../escape.png", "/etc/passwd", "a//b.png", "a/../../b.png", "a\\b.png", ""):
        with pytest.raises(ValueError, match="key"):
            await store.put(key, b"x", "image/png")
    # A symlink planted inside the root cannot lead writes or reads outside it.
    root.mkdir()
    (root / "link").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(ValueError, match="escapes"):
        await store.put("link/out.png", b"x", "image/png")
    with pytest.raises(ValueError, match="escapes"):
        await store.open("link/out.png")
    assert not (tmp_path / "out.png").exists()

    await store.put("2026/01/02/art_1.png", b"data", "image/png")
    assert (root / "2026/01/02/art_1.png").read_bytes() == b"data"
    await store.delete("2026/01/02/art_1.png")
    await store.delete("2026/01/02/art_1.png")  # idempotent
    assert not (root / "2026/01/02/art_1.png").exists()


# --- S3-compatible store, against moto's standalone server over real HTTP ---

S3_CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing"}


@pytest.fixture
def s3_endpoint(free_port: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    moto_server = pytest.importorskip(
        "moto.server", reason="moto[server] is not installed (pip install 'pluggably[dev]')"
    )
    # Nothing of the developer's AWS setup may reach the client under test.
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{free_port}"
    finally:
        server.stop()


def s3_client(endpoint: str) -> Any:
    boto3 = pytest.importorskip("boto3")
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


async def test_s3_store_round_trip(settings: Settings, s3_endpoint: str) -> None:
    # moto's state is process-wide: a fresh bucket keeps parametrized runs apart.
    bucket = f"artifacts-{secrets.token_hex(4)}"
    admin = s3_client(s3_endpoint)
    await asyncio.to_thread(admin.create_bucket, Bucket=bucket)
    store = S3ArtifactStore(
        bucket, endpoint_url=s3_endpoint, region="us-east-1", prefix="/gw/", **S3_CREDENTIALS
    )
    clock = Clock()
    async with artifact_app(settings, clock, store=store) as h, client_for(h.app) as client:
        info = await h.save(type="mesh", content_type="model/gltf-binary", ttl=timedelta(minutes=1))
        row = await h.row(info.id)
        assert row is not None
        assert row.backend == "s3"
        listing = await asyncio.to_thread(admin.list_objects_v2, Bucket=bucket)
        assert [o["Key"] for o in listing["Contents"]] == [f"gw/{row.storage_key}"]
        assert row.storage_key.endswith(f"{info.id}.glb")

        r = await client.get(info.url)
        assert r.status_code == 200
        assert r.content == PNG
        assert r.headers["content-type"] == "model/gltf-binary"
        assert r.headers["content-length"] == str(len(PNG))
        assert r.headers["content-disposition"] == f"inline; filename={info.id}.glb"
        assert stored_files(settings) == []  # nothing went to local disk

        clock.advance(minutes=2)
        async with h.app.state.container.db.session() as session:
            assert await h.service.cleanup_expired(session) == 1
        listing = await asyncio.to_thread(admin.list_objects_v2, Bucket=bucket)
        assert listing.get("Contents", []) == []
        assert await h.row(info.id) is None


def test_boto3_is_needed_only_when_s3_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    code = "import sys, pluggably.app, pluggably.artifacts; assert 'boto3' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"pip install 'pluggably\[s3\]'"):
        S3ArtifactStore("bucket")


def test_s3_misconfiguration_is_a_config_error() -> None:
    pytest.importorskip("boto3")
    with pytest.raises(ConfigError, match="artifacts_s3: Partial credentials"):
        S3ArtifactStore("bucket", region="us-east-1", secret_access_key="only-half")
    with pytest.raises(ConfigError, match=r"artifacts_s3: .*endpoint"):
        S3ArtifactStore("bucket", endpoint_url="not a url", **S3_CREDENTIALS)


async def test_s3_missing_object_is_not_found(settings: Settings, s3_endpoint: str) -> None:
    bucket = f"artifacts-{secrets.token_hex(4)}"
    admin = s3_client(s3_endpoint)
    await asyncio.to_thread(admin.create_bucket, Bucket=bucket)
    store = S3ArtifactStore(bucket, endpoint_url=s3_endpoint, region="us-east-1", **S3_CREDENTIALS)
    async with artifact_app(settings, Clock(), store=store) as h, client_for(h.app) as client:
        info = await h.save(b"soon gone")
        row = await h.row(info.id)
        assert row is not None
        await asyncio.to_thread(admin.delete_object, Bucket=bucket, Key=row.storage_key)
        assert_envelope(await client.get(info.url), 404, "artifact_not_found")


async def test_openapi_documents_a_public_route_and_its_errors(settings: Settings) -> None:
    async with artifact_app(settings, Clock()) as h, client_for(h.app) as client:
        spec = (await client.get("/openapi.json")).json()
        op = spec["paths"][ROUTE]["get"]
        assert {"403", "404", "410", "422", "500"} <= set(op["responses"])
        assert "401" not in op["responses"]  # the signed link is the only credential
        assert {p["name"] for p in op["parameters"]} == {"artifact_id", "expires", "sig"}
        # Garbage in the query is a validation error in the envelope, never a 5xx.
        r = await client.get("/v1/artifacts/x", params={"expires": "\x00no", "sig": "\x00no"})
        assert_envelope(r, 422, "validation_error")
