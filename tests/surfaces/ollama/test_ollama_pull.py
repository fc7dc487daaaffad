"""``pull`` and ``delete`` with the official `ollama` client against the loopback
Hugging Face hub: progress lines over the download job, the model registered under the
name pulled, then deleted; unknown quantizations and names named in the error."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import ollama
import pytest

from pluggably.app import create_app
from tests.api.test_fuzz import Server
from tests.conftest import ADMIN_KEY, client_for, running
from tests.downloads.test_downloads import MB, gguf_bytes, hub_settings, seed_hub
from tests.fixtures.hf_hub import FakeHub
from tests.surfaces.ollama.test_ollama_api import ADMIN, ollama_client

NAME = "hf.co/acme/tiny-GGUF:Q4_K_M"


async def test_pull_reports_progress_then_success_and_delete_removes_it(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    files = seed_hub(hf_hub)
    hf_hub.throttle_bps = 1 * MB  # 2 MB: progress lines while it transfers
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app), client_for(app, timeout=60) as client:
        api = ollama_client(app)
        lines = [line async for line in await api.pull(NAME, stream=True)]
        statuses = [line.status for line in lines]
        assert statuses[0] == "pulling manifest"
        assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
        progress = [line for line in lines if line.digest is not None]
        assert progress
        assert all(line.total == 2 * MB for line in progress)
        done = [line.completed or 0 for line in progress]
        assert done == sorted(done)
        assert done[0] < 2 * MB
        digest = progress[0].digest
        assert digest is not None
        assert digest.startswith("sha256:")
        assert progress[0].status == f"pulling {digest.removeprefix('sha256:')[:12]}"
        assert hf_hub.bytes_sent[("acme/tiny-GGUF", "tiny-Q4_K_M.gguf")] == 2 * MB

        # Registered under the name pulled; listed; the file is the Q4_K_M one.
        model = (await client.get(f"/v1/models/{NAME}", headers=ADMIN)).json()
        assert model["size_bytes"] == len(files["tiny-Q4_K_M.gguf"])
        assert NAME in [m.model for m in (await api.list()).models]

        # Pulling it again: already there.
        again = await api.pull(f"{NAME}", stream=False)
        assert again.status == "success"
        assert hf_hub.bytes_sent[("acme/tiny-GGUF", "tiny-Q4_K_M.gguf")] == 2 * MB

        deleted = await api.delete(NAME)
        assert deleted.status == "success"
        assert (await client.get(f"/v1/models/{NAME}", headers=ADMIN)).status_code == 404
        with pytest.raises(ollama.ResponseError) as twice:
            await api.delete(NAME)
        assert twice.value.status_code == 404


async def test_pull_names_what_it_cannot_pull(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    seed_hub(hf_hub)
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app):
        api = ollama_client(app)
        with pytest.raises(ollama.ResponseError) as quant:
            await api.pull("hf.co/acme/tiny-GGUF:Q2_K", stream=False)
        assert quant.value.status_code == 404
        assert "Q2_K" in quant.value.error
        assert "tiny-Q8_0.gguf" in quant.value.error  # the quantizations it has

        with pytest.raises(ollama.ResponseError) as library:
            await api.pull("gemma3:270m", stream=False)
        assert library.value.status_code == 400
        assert "hf.co/" in library.value.error

        with pytest.raises(ollama.ResponseError) as repo:
            await api.pull("hf.co/acme/missing-GGUF", stream=False)
        assert repo.value.status_code == 404


async def test_pull_without_stream_waits_for_the_download(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    seed_hub(hf_hub)
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app), client_for(app, timeout=60) as client:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        api = ollama.AsyncClient(
            host="http://testserver", headers={"X-API-Key": ADMIN_KEY}, transport=transport
        )
        answer = await api.pull("hf.co/acme/tiny-GGUF:q8_0", stream=False)  # any case
        assert answer.status == "success"
        model = (await client.get("/v1/models/hf.co/acme/tiny-GGUF:Q8_0", headers=ADMIN)).json()
        assert model["size_bytes"] == 3 * MB

        # Another spelling of the same name (host, quantization's case) is the same model:
        # no second download, and the name as pulled answers.
        for name in ("huggingface.co/acme/tiny-GGUF:Q8_0", "HF.CO/acme/tiny-GGUF:q8_0:latest"):
            assert (await api.pull(name, stream=False)).status == "success"
            shown = (await api.show(name)).details
            assert shown is not None
            assert shown.quantization_level
        assert hf_hub.bytes_sent[("acme/tiny-GGUF", "tiny-Q8_0.gguf")] == 3 * MB
        listed = [m.model for m in (await api.list()).models if "tiny" in (m.model or "")]
        assert listed == ["hf.co/acme/tiny-GGUF:Q8_0"]


async def test_pull_takes_the_model_not_its_projector_and_every_shard(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    """Vision repos ship the projector in the same quantization (mmproj-…-F16.gguf):
    the pull is the model itself; a split GGUF comes whole."""
    hf_hub.add_model(
        "acme/eye-GGUF",
        {
            "mmproj-eye-F16.gguf": gguf_bytes(MB, 1),
            "yolo-eye-F16.gguf": gguf_bytes(2 * MB, 2),
            "eye-Q4_K_M-00001-of-00002.gguf": gguf_bytes(MB, 3),
            "eye-Q4_K_M-00002-of-00002.gguf": gguf_bytes(MB, 4),
        },
        tags=("gguf",),
        library_name="gguf",
    )
    app = create_app(hub_settings(tmp_path, database_url, hf_hub))
    async with running(app):
        api = ollama_client(app)
        assert (await api.pull("hf.co/acme/eye-GGUF:f16", stream=False)).status == "success"
        assert hf_hub.bytes_sent.get(("acme/eye-GGUF", "yolo-eye-F16.gguf")) == 2 * MB
        assert ("acme/eye-GGUF", "mmproj-eye-F16.gguf") not in hf_hub.bytes_sent

        assert (await api.pull("hf.co/acme/eye-GGUF:Q4_K_M", stream=False)).status == "success"
        for shard in ("00001", "00002"):
            assert hf_hub.bytes_sent[("acme/eye-GGUF", f"eye-Q4_K_M-{shard}-of-00002.gguf")] == MB


@pytest.mark.slow
def test_a_client_gone_mid_pull_leaves_the_download_going(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    """As Ollama: closing a streamed pull stops the lines, not the download, which
    completes and registers the model; the server goes on serving."""
    files = seed_hub(hf_hub)
    hf_hub.throttle_bps = 1 * MB  # 2 MB: about two seconds
    settings = hub_settings(tmp_path, database_url, hf_hub)
    with (
        Server(create_app(settings), settings) as server,
        httpx.Client(base_url=server.url, headers=ADMIN, timeout=30) as http,
    ):
        with http.stream("POST", "/api/pull", json={"model": NAME}) as pulling:
            lines = pulling.iter_lines()
            assert json.loads(next(lines)) == {"status": "pulling manifest"}
            assert json.loads(next(lines))["completed"] < 2 * MB
        deadline = time.monotonic() + 30
        while (model := http.get(f"/v1/models/{NAME}")).status_code == 404:
            assert time.monotonic() < deadline, "the download did not complete"
            time.sleep(0.1)
        assert model.json()["size_bytes"] == len(files["tiny-Q4_K_M.gguf"])
        assert hf_hub.bytes_sent[("acme/tiny-GGUF", "tiny-Q4_K_M.gguf")] == 2 * MB
        assert http.get("/api/version").status_code == 200
