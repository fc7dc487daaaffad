"""Search, downloads, jobs, quota and cleanup over HTTP against the loopback hub."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import httpx

from pluggably.app import create_app
from pluggably.config import Settings
from tests.conftest import ADMIN_KEY, assert_envelope, client_for, make_settings, new_user, running
from tests.fixtures.hf_hub import FakeHub

ADMIN = {"X-API-Key": ADMIN_KEY}
MB = 1 << 20


def gguf_bytes(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 32
    return (b"GGUF" + block * (size // len(block) + 1))[:size]


def seed_hub(hub: FakeHub) -> dict[str, bytes]:
    files = {
        "tiny-Q8_0.gguf": gguf_bytes(3 * MB, 1),
        "tiny-Q4_K_M.gguf": gguf_bytes(2 * MB, 2),
        "README.md": b"---\nlicense: apache-2.0\n---\n# Tiny\n\nA tiny test model.\n",
    }
    hub.add_model(
        "acme/tiny-GGUF",
        files,
        tags=("gguf", "text-generation"),
        pipeline_tag="text-generation",
        library_name="gguf",
        downloads=500,
        likes=7,
    )
    hub.add_model(
        "acme/tiny-sd",
        {
            "model_index.json": json.dumps({"_class_name": "StableDiffusionPipeline"}).encode(),
            "unet/diffusion_pytorch_model.safetensors": b"\0" * 4096,
            "flax_model.msgpack": b"\0" * 10,
        },
        pipeline_tag="text-to-image",
        library_name="diffusers",
        downloads=100,
    )
    hub.add_model("acme/gated-GGUF", {"x-Q4_0.gguf": gguf_bytes(1000)}, tags=("gguf",), gated=True)
    return files


async def gone(path: Path, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def hub_settings(tmp_path: Path, database_url: str, hub: FakeHub, **extra: Any) -> Settings:
    return make_settings(tmp_path, database_url, hf_endpoint=hub.url, **extra)


async def wait_job(
    client: httpx.AsyncClient, job_id: str, *statuses: str, timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = (await client.get(f"/v1/jobs/{job_id}", headers=ADMIN)).json()
        if job["status"] in statuses:
            return dict(job)
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")


async def test_search(tmp_path: Path, database_url: str, hf_hub: FakeHub) -> None:
    seed_hub(hf_hub)
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app), client_for(app) as client:
        user = await new_user(client, "searcher")
        page = (
            await client.get("/v1/models/search", params={"query": "tiny"}, headers=user)
        ).json()
        results = {r["id"]: r for r in page["results"]}
        assert list(results) == ["acme/tiny-GGUF", "acme/tiny-sd"]  # by downloads
        gguf = results["acme/tiny-GGUF"]
        assert gguf["modality_hints"] == ["text"]
        assert gguf["downloads"] == 500
        assert gguf["likes"] == 7
        assert gguf["download_source"] == {"type": "huggingface", "id": "acme/tiny-GGUF"}
        assert sorted((f["filename"], f["size_bytes"]) for f in gguf["files"]) == [
            ("tiny-Q4_K_M.gguf", 2 * MB),
            ("tiny-Q8_0.gguf", 3 * MB),
        ]
        assert results["acme/tiny-sd"]["files"] is None
        assert results["acme/tiny-sd"]["modality_hints"] == ["image"]
        images = (
            await client.get("/v1/models/search", params={"modality": "image"}, headers=user)
        ).json()
        assert [r["id"] for r in images["results"]] == ["acme/tiny-sd"]
        gated = (
            await client.get("/v1/models/search", params={"query": "gated"}, headers=user)
        ).json()
        assert gated["results"][0]["gated"] is True
        first = (await client.get("/v1/models/search", params={"limit": 1}, headers=user)).json()
        assert len(first["results"]) == 1
        second = (
            await client.get(
                "/v1/models/search",
                params={"limit": 1, "cursor": first["next_cursor"]},
                headers=user,
            )
        ).json()
        assert second["results"][0]["id"] != first["results"][0]["id"]
        bad = await client.get("/v1/models/search", params={"cursor": "***"}, headers=user)
        assert_envelope(bad, 422, "validation_error")


async def test_search_with_the_hub_down(
    tmp_path: Path, database_url: str, hf_hub: FakeHub, hf_fast_retries: list[float]
) -> None:
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app), client_for(app) as client:
        hf_hub.down = True
        detail = assert_envelope(
            await client.get("/v1/models/search", headers=ADMIN), 503, "backend_unavailable"
        )
        assert hf_hub.url in detail["message"]
    unreachable = create_app(
        make_settings(tmp_path / "x", database_url, hf_endpoint="http://127.0.0.1:9")
    )
    async with running(unreachable), client_for(unreachable) as client:
        response = await client.get("/v1/models/search", headers=ADMIN)
        assert_envelope(response, 503, "backend_unavailable")


async def test_download_gguf_registers_the_model(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    files = seed_hub(hf_hub)
    settings = hub_settings(tmp_path, database_url, hf_hub)
    app = create_app(settings)
    async with running(app), client_for(app) as client:
        body = {"source": {"type": "huggingface", "id": "acme/tiny-GGUF"}}
        response = await client.post("/v1/models/download", json=body, headers=ADMIN)
        assert response.status_code == 202, response.text
        job = response.json()
        assert response.headers["location"] == f"/v1/jobs/{job['job_id']}"
        assert job["model_id"] == "acme/tiny-GGUF"
        assert job["bytes_total"] == 2 * MB  # the preferred quantization only
        done = await wait_job(client, job["job_id"], "completed", "failed")
        assert done["status"] == "completed", done
        assert (done["progress_pct"], done["bytes_done"]) == (100.0, 2 * MB)
        model = (await client.get("/v1/models/acme/tiny-GGUF", headers=ADMIN)).json()
        assert (model["status"], model["format"], model["version"]) == (
            "available",
            "gguf",
            "Q4_K_M",
        )
        assert model["source"]["type"] == "huggingface"
        assert model["source"]["uri"] == "acme/tiny-GGUF"
        path = Path(model["local_path"])
        assert path.is_relative_to(settings.models_dir)
        assert path.read_bytes() == files["tiny-Q4_K_M.gguf"]
        schema = await client.get("/v1/schema", params={"model": "acme/tiny-GGUF"}, headers=ADMIN)
        assert schema.status_code == 200
        for _ in range(200):  # enrichment runs in the background after registration
            docs = (await client.get("/v1/models/acme/tiny-GGUF", headers=ADMIN)).json()[
                "documentation"
            ]
            if docs["status"] != "pending":
                break
            await asyncio.sleep(0.02)
        assert docs["status"] == "ok", docs
        assert docs["summary"] == "A tiny test model."
        assert docs["license"] == "apache-2.0"
        assert "gguf" in docs["tags"]
        assert docs["source_url"] == f"{hf_hub.url}/acme/tiny-GGUF"
        again = await client.post("/v1/models/download", json=body, headers=ADMIN)
        assert again.status_code == 200
        assert again.json()["job_id"] == job["job_id"]
        assert hf_hub.bytes_sent[("acme/tiny-GGUF", "tiny-Q4_K_M.gguf")] == 2 * MB
        assert not (settings.models_dir / ".downloads" / job["job_id"]).exists()
        text = (await client.get("/metrics", headers=ADMIN)).text
        samples = {
            line.split()[0]: float(line.split()[1])
            for line in text.splitlines()
            if line.startswith("pluggably_") and "{" not in line
        }
        assert samples["pluggably_download_bytes_total"] == 2 * MB
        assert samples["pluggably_downloads_active"] == 0
        assert samples["pluggably_models_storage_bytes"] == 2 * MB


async def test_enrichment_failure_is_recorded(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    from pluggably.registry.enrichment import enrich
    from pluggably.registry.hub import HubClient

    seed_hub(hf_hub)
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app), client_for(app) as client:
        body = {"source": {"type": "huggingface", "id": "acme/tiny-GGUF"}}
        job = (await client.post("/v1/models/download", json=body, headers=ADMIN)).json()
        await wait_job(client, job["job_id"], "completed")
        container = app.state.container
        dead = HubClient("http://127.0.0.1:9")
        async with httpx.AsyncClient() as http:
            await enrich(container.db, dead, http, "acme/tiny-GGUF", "acme/tiny-GGUF", "main", [])
        model = (await client.get("/v1/models/acme/tiny-GGUF", headers=ADMIN)).json()
        assert model["status"] == "available"  # registration stands
        assert model["documentation"]["status"] == "failed"
        assert "model card" in model["documentation"]["error"]


async def test_named_file_and_snapshot(tmp_path: Path, database_url: str, hf_hub: FakeHub) -> None:
    seed_hub(hf_hub)
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app), client_for(app) as client:
        q8 = {
            "model": {"id": "acme/tiny:q8"},
            "source": {"type": "huggingface", "id": "acme/tiny-GGUF", "filename": "tiny-Q8_0.gguf"},
        }
        job = (await client.post("/v1/models/download", json=q8, headers=ADMIN)).json()
        assert (await wait_job(client, job["job_id"], "completed", "failed"))[
            "status"
        ] == "completed"
        assert (await client.get("/v1/models/acme/tiny:q8", headers=ADMIN)).json()[
            "version"
        ] == "Q8_0"
        sd = {"source": {"type": "huggingface", "id": "acme/tiny-sd"}}
        job = (await client.post("/v1/models/download", json=sd, headers=ADMIN)).json()
        done = await wait_job(client, job["job_id"], "completed", "failed")
        assert done["status"] == "completed", done
        model = (await client.get("/v1/models/acme/tiny-sd", headers=ADMIN)).json()
        assert (model["format"], model["modality"]) == ("diffusers", "image")
        folder = Path(model["local_path"])
        assert (folder / "unet" / "diffusion_pytorch_model.safetensors").exists()
        assert not (folder / "flax_model.msgpack").exists()  # weights no runtime loads
        missing = {
            "source": {"type": "huggingface", "id": "acme/tiny-GGUF", "filename": "nope.gguf"}
        }
        detail = assert_envelope(
            await client.post("/v1/models/download", json=missing, headers=ADMIN),
            404,
            "model_not_found",
        )
        assert "tiny-Q4_K_M.gguf" in detail["message"]
        unknown = {"source": {"type": "huggingface", "id": "acme/none"}}
        assert_envelope(
            await client.post("/v1/models/download", json=unknown, headers=ADMIN),
            404,
            "model_not_found",
        )
        gated = {"source": {"type": "huggingface", "id": "acme/gated-GGUF"}}
        detail = assert_envelope(
            await client.post("/v1/models/download", json=gated, headers=ADMIN),
            502,
            "upstream_error",
        )
        assert "gated" in detail["message"]


async def test_concurrent_requests_cause_one_transfer(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    seed_hub(hf_hub)
    hf_hub.throttle_bps = 8 * MB
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app), client_for(app) as client:
        body = {"source": {"type": "huggingface", "id": "acme/tiny-GGUF"}}
        responses = await asyncio.gather(
            *(client.post("/v1/models/download", json=body, headers=ADMIN) for _ in range(3))
        )
        assert sorted(r.status_code for r in responses) == [200, 200, 202]
        assert len({r.json()["job_id"] for r in responses}) == 1
        await wait_job(client, responses[0].json()["job_id"], "completed")
        gets = [r for r in hf_hub.requests if r.method == "GET" and "tiny-Q4_K_M.gguf" in r.path]
        assert hf_hub.bytes_sent[("acme/tiny-GGUF", "tiny-Q4_K_M.gguf")] == 2 * MB
        assert len([r for r in gets if "cdn-lfs" in r.path]) == 1


async def test_cancel_stops_the_transfer(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    seed_hub(hf_hub)
    hf_hub.throttle_bps = 256 * 1024
    settings = hub_settings(tmp_path, database_url, hf_hub, keep_partial_downloads=False)
    app = create_app(settings)
    async with running(app), client_for(app) as client:
        body = {"source": {"type": "huggingface", "id": "acme/tiny-GGUF"}}
        job = (await client.post("/v1/models/download", json=body, headers=ADMIN)).json()
        key = ("acme/tiny-GGUF", "tiny-Q4_K_M.gguf")
        while hf_hub.bytes_sent[key] < 100_000:
            await asyncio.sleep(0.02)
        cancelled = await client.delete(f"/v1/jobs/{job['job_id']}", headers=ADMIN)
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        await asyncio.to_thread(hf_hub.wait_idle, 1.0)  # the server stops sending within 1 s
        sent = hf_hub.bytes_sent[key]
        await asyncio.sleep(0.5)
        assert hf_hub.bytes_sent[key] == sent < 2 * MB
        assert not (settings.models_dir / ".downloads" / job["job_id"]).exists()
        assert_envelope(
            await client.get("/v1/models/acme/tiny-GGUF", headers=ADMIN), 404, "model_not_found"
        )


async def test_restart_mid_download_resumes(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    files = seed_hub(hf_hub)
    hf_hub.throttle_bps = 512 * 1024
    settings = hub_settings(
        tmp_path, database_url, hf_hub, storage_cleanup_interval_s=60
    )  # the scheduled cleanup must not take a resuming download's files
    key = ("acme/tiny-GGUF", "tiny-Q4_K_M.gguf")
    app = create_app(settings)
    async with running(app), client_for(app) as client:
        body = {
            "source": {"type": "huggingface", "id": "acme/tiny-GGUF"},
            "options": {"sha256": hashlib.sha256(files["tiny-Q4_K_M.gguf"]).hexdigest()},
        }
        job = (await client.post("/v1/models/download", json=body, headers=ADMIN)).json()
        while hf_hub.bytes_sent[key] < 600_000:
            await asyncio.sleep(0.02)
    # The server went away mid-transfer; the job is still "running" in the database.
    await asyncio.to_thread(hf_hub.wait_idle, 2.0)
    first_attempt = hf_hub.bytes_sent[key]
    hf_hub.throttle_bps = None
    app = create_app(settings)
    async with running(app), client_for(app) as client:
        done = await wait_job(client, job["job_id"], "completed", "failed")
        assert done["status"] == "completed", done
        model = (await client.get("/v1/models/acme/tiny-GGUF", headers=ADMIN)).json()
        assert Path(model["local_path"]).read_bytes() == files["tiny-Q4_K_M.gguf"]
    ranged = [
        r
        for r in hf_hub.requests
        if r.headers.get("range", "").startswith("bytes=") and "Q4_K_M" in r.path
    ]
    assert ranged, [(r.method, r.path, r.headers.get("range")) for r in hf_hub.requests]
    # Only the missing tail went over the wire again (plus what was in flight at the stop).
    assert hf_hub.bytes_sent[key] - first_attempt < 2 * MB - 400_000


async def test_checksum_mismatch_fails(tmp_path: Path, database_url: str, hf_hub: FakeHub) -> None:
    seed_hub(hf_hub)
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app), client_for(app) as client:
        body = {
            "source": {"type": "huggingface", "id": "acme/tiny-GGUF"},
            "options": {"sha256": "0" * 64},
        }
        job = (await client.post("/v1/models/download", json=body, headers=ADMIN)).json()
        failed = await wait_job(client, job["job_id"], "failed", "completed")
        assert failed["status"] == "failed"
        assert failed["error_code"] == "invalid_parameter"
        assert "Checksum mismatch" in failed["error"]
        # As the PlugAI clients parse a job (Python: progress_pct a float, error a str; Dart:
        # `error as String?`), in the list as well as alone.
        listed = (await client.get("/v1/jobs", headers=ADMIN)).json()["jobs"]
        assert [(j["job_id"], j["error"]) for j in listed] == [(job["job_id"], failed["error"])]
        assert isinstance(listed[0]["progress_pct"], float)
        assert_envelope(
            await client.get("/v1/models/acme/tiny-GGUF", headers=ADMIN), 404, "model_not_found"
        )


async def test_quota_refuses_and_cleanup_frees(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    seed_hub(hf_hub)
    settings = hub_settings(tmp_path, database_url, hf_hub, storage_limit_bytes=int(2.5 * MB))
    app = create_app(settings)
    async with running(app), client_for(app) as client:
        big = {
            "source": {"type": "huggingface", "id": "acme/tiny-GGUF", "filename": "tiny-Q8_0.gguf"}
        }
        detail = assert_envelope(
            await client.post("/v1/models/download", json=big, headers=ADMIN), 507, "storage_full"
        )
        assert "quota" in detail["message"]
        small = {"source": {"type": "huggingface", "id": "acme/tiny-GGUF"}}
        job = (await client.post("/v1/models/download", json=small, headers=ADMIN)).json()
        assert (await wait_job(client, job["job_id"], "completed"))["status"] == "completed"
        leftover = settings.models_dir / ".downloads" / "job_leftover"
        leftover.mkdir(parents=True)
        (leftover / "x.gguf.part").write_bytes(b"\0" * 1000)
        usage = (await client.get("/v1/storage", headers=ADMIN)).json()
        assert usage["limit_bytes"] == int(2.5 * MB)
        assert usage["used_bytes"] == 2 * MB + 1000
        assert [m["id"] for m in usage["models"]] == ["acme/tiny-GGUF"]
        # Over the quota now? No: cleanup only takes leftovers...
        dry = (
            await client.post("/v1/storage/cleanup", json={"dry_run": True}, headers=ADMIN)
        ).json()
        assert [(r["kind"], r["id"]) for r in dry["removed"]] == [("staging", "job_leftover")]
        assert leftover.exists()
        # ...until the quota shrinks below what the models use.
        app.state.container.quota.limit_bytes = MB
        dry = (
            await client.post("/v1/storage/cleanup", json={"dry_run": True}, headers=ADMIN)
        ).json()
        assert [(r["kind"], r["id"]) for r in dry["removed"]] == [
            ("staging", "job_leftover"),
            ("model", "acme/tiny-GGUF"),
        ]
        real = (await client.post("/v1/storage/cleanup", json={}, headers=ADMIN)).json()
        assert real["freed_bytes"] == 2 * MB + 1000
        assert real["used_bytes_after"] == 0
        assert not leftover.exists()
        await gone(settings.models_dir / "hf")
        assert (await client.get("/v1/storage", headers=ADMIN)).json()["used_bytes"] == 0
        assert_envelope(
            await client.get("/v1/models/acme/tiny-GGUF", headers=ADMIN), 404, "model_not_found"
        )


async def test_url_sources_are_confined(tmp_path: Path, database_url: str, hf_hub: FakeHub) -> None:
    seed_hub(hf_hub)
    file_url = f"{hf_hub.url}/acme/tiny-GGUF/resolve/main/tiny-Q4_K_M.gguf"
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app), client_for(app) as client:
        for uri, code, status in [
            (file_url, "invalid_parameter", 400),  # loopback
            ("http://10.0.0.8/model.gguf", "invalid_parameter", 400),
            ("http://169.254.169.254/latest/x.gguf", "invalid_parameter", 400),
            ("file:///etc/passwd", "invalid_parameter", 400),
            ("https://example.org/notes.txt", "invalid_parameter", 400),
        ]:
            body = {"source": {"type": "url", "uri": uri}}
            assert_envelope(
                await client.post("/v1/models/download", json=body, headers=ADMIN), status, code
            )
        escape = {"model": {"id": "../../etc/passwd"}, "source": {"type": "url", "uri": file_url}}
        assert_envelope(
            await client.post("/v1/models/download", json=escape, headers=ADMIN),
            422,
            "validation_error",
        )
    allowed = create_app(
        hub_settings(tmp_path / "b", database_url, hf_hub, allow_private_downloads=True)
    )
    async with running(allowed), client_for(allowed) as client:
        body = {"source": {"type": "url", "uri": file_url}}
        job = (await client.post("/v1/models/download", json=body, headers=ADMIN)).json()
        done = await wait_job(client, job["job_id"], "completed", "failed")
        assert done["status"] == "completed", done
        model = (await client.get(f"/v1/models/{done['model_id']}", headers=ADMIN)).json()
        assert model["source"] == {"type": "url", "uri": file_url, "revision": None}
        assert Path(model["local_path"]).is_relative_to(allowed.state.container.settings.models_dir)


async def test_jobs_are_admin_only_and_stream_progress(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    seed_hub(hf_hub)
    hf_hub.throttle_bps = MB  # two seconds: progress frames at 1 s intervals
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app), client_for(app) as client:
        user = await new_user(client, "curious")
        body = {"source": {"type": "huggingface", "id": "acme/tiny-GGUF"}}
        assert_envelope(
            await client.post("/v1/models/download", json=body, headers=user), 403, "forbidden"
        )
        for path in ("/v1/jobs", "/v1/storage"):
            assert_envelope(await client.get(path, headers=user), 403, "forbidden")
        assert_envelope(await client.get("/v1/jobs/job_nope", headers=ADMIN), 404, "job_not_found")
        job = (await client.post("/v1/models/download", json=body, headers=ADMIN)).json()
        frames = []
        async with client.stream(
            "GET", f"/v1/jobs/{job['job_id']}/events", headers=ADMIN
        ) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    frames.append(line.removeprefix("data: "))
        assert frames[-1] == "[DONE]"
        states = [json.loads(f) for f in frames[:-1]]
        assert states[-1]["status"] == "completed"
        progress = [s["bytes_done"] for s in states]
        assert progress == sorted(progress)
        assert len(states) >= 3  # start, some progress, the end
        listed = (await client.get("/v1/jobs", headers=ADMIN)).json()["jobs"]
        assert [j["job_id"] for j in listed] == [job["job_id"]]


async def test_a_new_request_resumes_a_cancelled_download(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    files = seed_hub(hf_hub)
    hf_hub.throttle_bps = 512 * 1024
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))  # keeps partial files
    key = ("acme/tiny-GGUF", "tiny-Q4_K_M.gguf")
    async with running(app), client_for(app) as client:
        body = {"source": {"type": "huggingface", "id": "acme/tiny-GGUF"}}
        first = (await client.post("/v1/models/download", json=body, headers=ADMIN)).json()
        while hf_hub.bytes_sent[key] < 600_000:
            await asyncio.sleep(0.02)
        await client.delete(f"/v1/jobs/{first['job_id']}", headers=ADMIN)
        await asyncio.to_thread(hf_hub.wait_idle, 1.0)
        hf_hub.throttle_bps = None
        second = await client.post("/v1/models/download", json=body, headers=ADMIN)
        assert second.status_code == 202
        assert second.json()["job_id"] != first["job_id"]
        done = await wait_job(client, second.json()["job_id"], "completed", "failed")
        assert done["status"] == "completed", done
        model = (await client.get("/v1/models/acme/tiny-GGUF", headers=ADMIN)).json()
        assert Path(model["local_path"]).read_bytes() == files["tiny-Q4_K_M.gguf"]
    resumed = [r for r in hf_hub.requests if r.headers.get("range", "").startswith("bytes=")]
    assert resumed
    assert hf_hub.bytes_sent[key] < 2 * 2 * MB - 500_000  # not downloaded twice


async def test_quota_is_watched_while_an_unsized_download_runs(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    seed_hub(hf_hub)
    file_url = f"{hf_hub.url}/acme/tiny-GGUF/resolve/main/tiny-Q4_K_M.gguf"
    settings = hub_settings(
        tmp_path, database_url, hf_hub, allow_private_downloads=True, storage_limit_bytes=MB
    )
    app = create_app(settings)
    async with running(app), client_for(app) as client:
        body = {"source": {"type": "url", "uri": file_url}}
        response = await client.post("/v1/models/download", json=body, headers=ADMIN)
        assert response.status_code == 202  # a URL's size is unknown until it arrives
        assert (response.json()["progress_pct"], response.json()["bytes_total"]) == (0.0, None)
        failed = await wait_job(client, response.json()["job_id"], "failed", "completed")
        assert failed["error_code"] == "storage_full"
        assert not (settings.models_dir / ".downloads" / failed["job_id"]).exists()
        assert (await client.get("/v1/storage", headers=ADMIN)).json()["used_bytes"] == 0


async def test_retention_on_a_schedule(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, storage_cleanup_interval_s=60)
    leftover = settings.models_dir / ".downloads" / "job_old"
    leftover.mkdir(parents=True)
    (leftover / "x.part").write_bytes(b"\0" * 100)
    app = create_app(settings)
    async with running(app):
        for _ in range(200):  # the first round runs at startup
            if not leftover.exists():
                break
            await asyncio.sleep(0.02)
        assert not leftover.exists()


async def test_models_from_one_repo_keep_their_own_files(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    files = seed_hub(hf_hub)
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app), client_for(app) as client:
        a = {"model": {"id": "a"}, "source": {"type": "huggingface", "id": "acme/tiny-GGUF"}}
        b = {
            "model": {"id": "b"},
            "source": {"type": "huggingface", "id": "acme/tiny-GGUF", "filename": "tiny-Q8_0.gguf"},
        }
        for body in (a, b):
            job = (await client.post("/v1/models/download", json=body, headers=ADMIN)).json()
            assert (await wait_job(client, job["job_id"], "completed", "failed"))[
                "status"
            ] == "completed"
        path_a = Path((await client.get("/v1/models/a", headers=ADMIN)).json()["local_path"])
        path_b = Path((await client.get("/v1/models/b", headers=ADMIN)).json()["local_path"])
        assert path_a.parent != path_b.parent
        assert (await client.delete("/v1/models/a", headers=ADMIN)).status_code == 204
        await gone(path_a.parent)  # files go in a worker thread once the delete is committed
        assert not path_a.exists()
        assert not path_a.parent.exists()  # its now-empty folder went too
        assert path_b.read_bytes() == files["tiny-Q8_0.gguf"]


async def test_one_model_id_one_download(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    seed_hub(hf_hub)
    hf_hub.throttle_bps = MB
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app), client_for(app) as client:
        first = {"model": {"id": "same"}, "source": {"type": "huggingface", "id": "acme/tiny-GGUF"}}
        other = {
            "model": {"id": "same"},
            "source": {"type": "huggingface", "id": "acme/tiny-GGUF", "filename": "tiny-Q8_0.gguf"},
        }
        assert (
            await client.post("/v1/models/download", json=first, headers=ADMIN)
        ).status_code == 202
        detail = assert_envelope(
            await client.post("/v1/models/download", json=other, headers=ADMIN), 409, "conflict"
        )
        assert "same" in detail["message"]


async def test_bad_repo_ids_and_cursors_are_422(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app), client_for(app) as client:
        for repo in ("acme/tiny--GGUF", "acme/x..y", "acme/" + "x" * 120):
            body = {"source": {"type": "huggingface", "id": repo}}
            response = await client.post("/v1/models/download", json=body, headers=ADMIN)
            assert_envelope(response, 422, "validation_error")
        import base64

        huge = base64.urlsafe_b64encode(b"1000000000000000").decode().rstrip("=")
        response = await client.get("/v1/models/search", params={"cursor": huge}, headers=ADMIN)
        assert_envelope(response, 422, "validation_error")
        assert not [r for r in hf_hub.requests if "limit=1000000" in r.path]


async def test_cancel_interrupts_a_stalled_transfer(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    seed_hub(hf_hub)
    hf_hub.throttle_bps = 64 * 1024
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app), client_for(app) as client:
        body = {"source": {"type": "huggingface", "id": "acme/tiny-GGUF"}}
        job = (await client.post("/v1/models/download", json=body, headers=ADMIN)).json()
        key = ("acme/tiny-GGUF", "tiny-Q4_K_M.gguf")
        while hf_hub.bytes_sent[key] < 10_000:
            await asyncio.sleep(0.02)
        hf_hub.throttle_bps = 1  # the upstream stalls between chunks
        await asyncio.sleep(0.3)
        started = time.monotonic()
        cancelled = (await client.delete(f"/v1/jobs/{job['job_id']}", headers=ADMIN)).json()
        assert cancelled["status"] == "cancelled"
        assert time.monotonic() - started < 2


async def test_a_vision_repos_projector_is_never_the_file_chosen(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    """A projector in the preferred quantization (mmproj-…-Q4_K_M) sorts first, yet the
    model's own GGUF, even of a less preferred quantization, is what downloads."""
    hf_hub.add_model(
        "acme/vision-GGUF",
        {"mmproj-vision-Q4_K_M.gguf": gguf_bytes(1000), "vision-Q8_0.gguf": gguf_bytes(3000)},
        tags=("gguf",),
    )
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app), client_for(app) as client:
        body = {"source": {"type": "huggingface", "id": "acme/vision-GGUF"}}
        response = await client.post("/v1/models/download", json=body, headers=ADMIN)
        assert response.status_code == 202, response.text
        done = await wait_job(client, response.json()["job_id"], "completed", "failed")
        assert done["status"] == "completed", done
        assert done["bytes_total"] == 3000
        model = (await client.get("/v1/models/acme/vision-GGUF", headers=ADMIN)).json()
        assert Path(model["local_path"]).name == "vision-Q8_0.gguf"
        assert model["version"] == "Q8_0"
