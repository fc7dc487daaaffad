"""Local generation over HTTP with the torch runtimes: tiny random transformers, diffusers
and Shap-E models (tests/fixtures/tiny_models.py) are put in the models directory, found
by discovery at startup, and answer POST /v1/generate through the scheduler. Random
weights say nothing about quality: these tests check plumbing (text, counts, frames,
PNGs, meshes, artifact links, validation, residency)."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("diffusers")
trimesh = pytest.importorskip("trimesh")

import httpx  # noqa: E402
import torch  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from PIL import Image  # noqa: E402

from pluggably.app import create_app  # noqa: E402
from pluggably.runtimes import shap_e_rt  # noqa: E402
from tests.conftest import (  # noqa: E402
    ADMIN_KEY,
    assert_envelope,
    client_for,
    deltas,
    generate,
    make_settings,
    running,
    sse_frames,
)
from tests.fixtures.tiny_models import (  # noqa: E402
    build_tiny_diffusers,
    build_tiny_shap_e,
    build_tiny_transformers,
)

# diffusers' Heun scheduler hands torch tensors to numpy, which numpy 2 warns about.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
ADMIN = {"X-API-Key": ADMIN_KEY}
LLM, PAINTER, SCULPTOR = "local/llm", "local/painter", "local/sculptor"
INLINE_DEFAULT = 256 * 1024
RUNTIME_KIND = {LLM: "transformers", PAINTER: "diffusers", SCULPTOR: "shap_e"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Models this small gain nothing from parallel kernels, and on a busy 2-core machine
    the OpenMP workers waiting on each other make each step 30-100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _small_meshes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The factory makes Shap-E runtimes without arguments: an 8³ marching-cubes grid
    and a 64-pixel preview keep a tiny model's mesh small and under a second of CPU."""
    monkeypatch.setattr(shap_e_rt, "GRID_SIZE", 8)
    monkeypatch.setattr(shap_e_rt, "PREVIEW_SIZE", 64)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Built once per session; each test's models directory links to these files."""
    root = tmp_path_factory.mktemp("tiny-http-models")
    return {
        "llm": build_tiny_transformers(root / "llm"),
        "painter": build_tiny_diffusers(root / "painter"),
        "sculptor": build_tiny_shap_e(root / "sculptor"),
    }


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem
        shutil.copy2(source, target)


def torch_app(
    tmp_path: Path, database_url: str, tiny_models: dict[str, Path], **overrides: Any
) -> FastAPI:
    """An app whose models directory holds the tiny models as data/models/<name>."""
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True, exist_ok=True)
    for name, source in tiny_models.items():
        if not (models / name).exists():
            shutil.copytree(source, models / name, copy_function=_link_or_copy)
    overrides.setdefault("max_loaded_models", 3)
    return create_app(make_settings(tmp_path, database_url, **overrides))


@pytest.fixture
async def client(
    tmp_path: Path, database_url: str, tiny_models: dict[str, Path]
) -> AsyncIterator[httpx.AsyncClient]:
    app = torch_app(tmp_path, database_url, tiny_models)
    async with running(app), client_for(app, timeout=60) as c:
        yield c


def png_b64(width: int, height: int, color: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size


def load_mesh(data: bytes, fmt: str) -> Any:
    mesh = trimesh.load(io.BytesIO(data), file_type=fmt, force="mesh")
    assert len(mesh.vertices) > 0
    assert len(mesh.faces) > 0
    return mesh


async def download(client: httpx.AsyncClient, artifact: dict[str, Any]) -> bytes:
    """An artifact's bytes through its signed URL alone (no credential)."""
    response = await client.get(artifact["url"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(artifact["content_type"])
    assert len(response.content) == artifact["size_bytes"]
    return response.content


async def ok(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await generate(client, ADMIN, **body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


# --- discovery and residency ----------------------------------------------------------


async def test_discovery_registers_the_tiny_models(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/v1/models", params={"provider": "local"}, headers=ADMIN)).json()
    found = {m["id"]: (m["modality"], m["format"]) for m in listed["models"]}
    assert found == {
        LLM: ("text", "transformers"),
        PAINTER: ("image", "diffusers"),
        SCULPTOR: ("3d", "shap_e"),
    }
    for model_id in RUNTIME_KIND:
        status = (await client.get(f"/v1/models/{model_id}/status", headers=ADMIN)).json()
        assert (status["status"], status["runtime_status"]) == ("available", "unloaded")


async def test_an_idle_model_unloads_after_its_keep_alive(
    tmp_path: Path, database_url: str, tiny_models: dict[str, Path]
) -> None:
    """The keep-alive pass the lifespan runs (lifespan.periodic_work), end to end."""
    app = torch_app(tmp_path, database_url, tiny_models, keep_alive_s=0.3)
    async with running(app), client_for(app, timeout=60) as client:
        await ok(client, model=LLM, input={"prompt": "hi"}, parameters={"max_tokens": 2})
        loaded = (await client.get("/v1/models/loaded", headers=ADMIN)).json()["models"]
        [entry] = [m for m in loaded if m["model_id"] == LLM]
        assert entry["expires_at"] is not None
        for _ in range(200):
            loaded = (await client.get("/v1/models/loaded", headers=ADMIN)).json()["models"]
            if all(m["model_id"] != LLM for m in loaded):
                break
            await asyncio.sleep(0.05)
        status = (await client.get(f"/v1/models/{LLM}/status", headers=ADMIN)).json()
        assert status["runtime_status"] == "unloaded"


async def test_used_models_are_loaded_with_their_runtime(client: httpx.AsyncClient) -> None:
    # All three at once: each loads and runs in the scheduler's worker threads.
    answers = await asyncio.gather(
        ok(client, model=LLM, input={"prompt": "hi"}, parameters={"max_tokens": 2}),
        ok(client, model=PAINTER, input={"prompt": "a cat"}, parameters={"num_inference_steps": 1}),
        ok(
            client, model=SCULPTOR, input={"prompt": "a cup"}, parameters={"num_inference_steps": 1}
        ),
    )
    assert [a["modality"] for a in answers] == ["text", "image", "3d"]
    assert all(a["timings"]["load_ms"] > 0 for a in answers)

    for model_id in RUNTIME_KIND:
        status = (await client.get(f"/v1/models/{model_id}/status", headers=ADMIN)).json()
        assert status["runtime_status"] == "loaded"
        assert status["memory_bytes"] > 0
    loaded = (await client.get("/v1/models/loaded", headers=ADMIN)).json()["models"]
    assert {m["model_id"]: m["runtime"] for m in loaded} == RUNTIME_KIND
    assert all(m["in_flight"] == 0 and m["memory_bytes"] > 0 for m in loaded)


async def test_status_shows_when_a_model_was_last_used(client: httpx.AsyncClient) -> None:
    await ok(client, model=LLM, input={"prompt": "hi"}, parameters={"max_tokens": 1})
    status = (await client.get(f"/v1/models/{LLM}/status", headers=ADMIN)).json()
    assert status["last_used_at"] is not None
    info = (await client.get(f"/v1/models/{LLM}", headers=ADMIN)).json()
    assert info["last_used_at"] is not None


# --- text -----------------------------------------------------------------------------


async def test_text_answer_counts_tokens(client: httpx.AsyncClient) -> None:
    body = {"model": LLM, "input": {"prompt": "hello world"}}
    answer = await ok(client, **body, parameters={"max_tokens": 6, "temperature": 0})

    assert (answer["provider"], answer["model"], answer["modality"]) == ("local", LLM, "text")
    assert answer["output"]["text"]
    assert answer["output"]["images"] == []
    assert answer["output"]["artifacts"] == []
    assert answer["finish_reason"] == "length"
    usage = answer["usage"]
    assert usage["completion_tokens"] == 6
    assert usage["prompt_tokens"] > 3  # "User: hello world\nAssistant:", tokenized
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert answer["timings"]["load_ms"] > 0  # the first request loaded it

    again = await ok(client, **body, parameters={"max_tokens": 6, "temperature": 0})
    assert again["output"]["text"] == answer["output"]["text"]  # greedy
    assert again["usage"] == usage
    assert again["timings"]["load_ms"] == 0


async def test_text_streams_deltas_then_complete(client: httpx.AsyncClient) -> None:
    body = {
        "model": LLM,
        "input": {"prompt": "hello world"},
        "parameters": {"max_tokens": 12, "temperature": 1.0, "seed": 5},
    }
    frames = await sse_frames(client, ADMIN, **body)

    assert (frames[0]["event"], frames[0]["model"]) == ("loading", f"local:{LLM}")  # first use
    assert frames[1]["event"] == "model_selected"
    assert frames[1]["model"] == f"local:{LLM}"
    pieces = deltas(frames)
    assert len(pieces) >= 3  # token by token, never one chunk
    assert all(pieces)
    complete = frames[-2]
    assert complete["event"] == "complete"
    assert complete["finish_reason"] == "length"
    assert complete["usage"]["completion_tokens"] == 12
    assert complete["usage"]["prompt_tokens"] > 3
    assert "text" not in complete["output"]  # already sent as deltas
    assert frames[-1] == "[DONE]"

    same = await ok(client, **body)  # the same seed, as one JSON answer
    assert same["output"]["text"] == "".join(pieces)


# --- image ----------------------------------------------------------------------------


async def test_text_to_image_returns_pngs(client: httpx.AsyncClient) -> None:
    params = {"width": 80, "height": 64, "num_inference_steps": 2, "num_images": 2, "seed": 1}
    answer = await ok(client, model=PAINTER, input={"prompt": "a red cat"}, parameters=params)

    assert (answer["modality"], answer["finish_reason"]) == ("image", "stop")
    assert answer["usage"] is None
    images = [base64.b64decode(i) for i in answer["output"]["images"]]
    assert [png_size(i) for i in images] == [(80, 64), (80, 64)]
    assert answer["output"]["artifacts"] == []
    again = await ok(client, model=PAINTER, input={"prompt": "a red cat"}, parameters=params)
    assert again["output"]["images"] == answer["output"]["images"]  # seeded


async def test_image_to_image(client: httpx.AsyncClient) -> None:
    body = {
        "model": PAINTER,
        "input": {"prompt": "make it blue", "images": [png_b64(72, 64, (200, 30, 30))]},
        "parameters": {"num_inference_steps": 4, "strength": 0.5, "seed": 3},
    }
    same_size = await ok(client, **body)
    resized = await ok(client, **{**body, "parameters": {**body["parameters"], "width": 64}})

    assert [png_size(base64.b64decode(i)) for i in same_size["output"]["images"]] == [(72, 64)]
    assert [png_size(base64.b64decode(i)) for i in resized["output"]["images"]] == [(64, 64)]
    two = await ok(client, **{**body, "parameters": {**body["parameters"], "num_images": 2}})
    assert [png_size(base64.b64decode(i)) for i in two["output"]["images"]] == [(72, 64)] * 2
    assert two["output"]["images"][0] != two["output"]["images"][1]  # two draws of noise
    data_url = "data:image/png;base64," + png_b64(64, 64, (0, 0, 0))
    from_url = await ok(client, **{**body, "input": {"prompt": "x", "images": [data_url]}})
    assert len(from_url["output"]["images"]) == 1


async def test_large_images_come_back_as_artifacts(
    tmp_path: Path, database_url: str, tiny_models: dict[str, Path]
) -> None:
    app = torch_app(tmp_path, database_url, tiny_models, inline_output_bytes=100)
    async with running(app), client_for(app, timeout=60) as client:
        params = {"num_inference_steps": 1, "num_images": 2, "seed": 2}
        answer = await ok(client, model=PAINTER, input={"prompt": "a dog"}, parameters=params)

        output = answer["output"]
        assert output["images"] == []
        assert [(a["type"], a["content_type"]) for a in output["artifacts"]] == [
            ("image", "image/png"),
            ("image", "image/png"),
        ]
        for artifact in output["artifacts"]:
            assert artifact["url"].startswith(f"/v1/artifacts/{artifact['id']}?")
            assert artifact["expires_at"]
            assert png_size(await download(client, artifact)) == (64, 64)  # the default size


# --- 3D -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["glb", "obj", "ply"])
async def test_text_to_mesh_with_preview(client: httpx.AsyncClient, fmt: str) -> None:
    params = {"num_inference_steps": 2, "output_format": fmt, "seed": 0}
    answer = await ok(client, model=SCULPTOR, input={"prompt": "a chair"}, parameters=params)

    assert (answer["modality"], answer["finish_reason"]) == ("3d", "stop")
    output = answer["output"]
    assert output["images"] == []
    links = {a["type"]: a for a in output["artifacts"]}
    if output["mesh"] is not None:  # within the inline threshold (256 KiB)
        data = base64.b64decode(output["mesh"])
        assert len(data) <= INLINE_DEFAULT
        assert sorted(links) == ["preview"]
    else:
        assert sorted(links) == ["mesh", "preview"]
        data = await download(client, links["mesh"])
        assert len(data) > INLINE_DEFAULT
    load_mesh(data, fmt)
    assert links["preview"]["content_type"] == "image/png"
    assert png_size(await download(client, links["preview"])) == (64, 64)


async def test_large_mesh_comes_back_as_an_artifact(
    tmp_path: Path, database_url: str, tiny_models: dict[str, Path]
) -> None:
    app = torch_app(tmp_path, database_url, tiny_models, inline_output_bytes=0)
    async with running(app), client_for(app, timeout=60) as client:
        params = {"num_inference_steps": 1, "output_format": "obj", "seed": 0}
        answer = await ok(client, model=SCULPTOR, input={"prompt": "a cup"}, parameters=params)

        output = answer["output"]
        assert output["mesh"] is None
        kinds = {a["type"]: a for a in output["artifacts"]}
        assert sorted(kinds) == ["mesh", "preview"]
        assert kinds["mesh"]["content_type"] == "model/obj"
        load_mesh(await download(client, kinds["mesh"]), "obj")
        assert kinds["preview"]["content_type"] == "image/png"
        png_size(await download(client, kinds["preview"]))


# --- parameters -----------------------------------------------------------------------


async def test_out_of_range_parameters_name_the_field(client: httpx.AsyncClient) -> None:
    small = await generate(
        client, ADMIN, model=PAINTER, input={"prompt": "x"}, parameters={"width": 10}
    )
    detail = assert_envelope(small, 422, "validation_error")
    assert "width" in detail["message"]
    assert detail["details"]  # below the minimum, and not a multiple of 8
    assert all(d["loc"] == ["body", "parameters", "width"] for d in detail["details"])

    fmt = await generate(
        client, ADMIN, model=SCULPTOR, input={"prompt": "x"}, parameters={"output_format": "stl"}
    )
    detail = assert_envelope(fmt, 422, "validation_error")
    assert [d["loc"] for d in detail["details"]] == [["body", "parameters", "output_format"]]

    tokens = await generate(
        client, ADMIN, model=LLM, input={"prompt": "x"}, parameters={"max_tokens": 0}
    )
    assert_envelope(tokens, 422, "validation_error")
    # In the schema, but transformers has no way to hold an answer to JSON: said, not ignored.
    json_format = await generate(
        client, ADMIN, model=LLM, input={"prompt": "x"}, parameters={"format": "json"}
    )
    detail = assert_envelope(json_format, 400, "feature_not_supported")
    assert "JSON" in detail["message"]
    status = (await client.get(f"/v1/models/{PAINTER}/status", headers=ADMIN)).json()
    assert status["runtime_status"] == "unloaded"  # nothing was run


async def test_stream_is_ignored_for_images_and_meshes(client: httpx.AsyncClient) -> None:
    image = await generate(
        client,
        ADMIN,
        model=PAINTER,
        input={"prompt": "a cat"},
        parameters={"num_inference_steps": 1},
        stream=True,
    )
    assert image.status_code == 200, image.text
    assert image.headers["content-type"].startswith("application/json")
    assert len(image.json()["output"]["images"]) == 1

    mesh = await generate(
        client,
        ADMIN,
        model=SCULPTOR,
        input={"prompt": "a cup"},
        parameters={"num_inference_steps": 1},
        stream=True,
    )
    assert mesh.status_code == 200, mesh.text
    assert mesh.headers["content-type"].startswith("application/json")
    load_mesh(base64.b64decode(mesh.json()["output"]["mesh"]), "glb")  # the default format


async def test_while_loading_fallback_for_images(
    tmp_path: Path, database_url: str, tiny_models: dict[str, Path]
) -> None:
    """An image model that is not loaded yet: the pinned image default answers (and says
    so), the asked-for model loads in the background and answers the next request."""
    models = {**tiny_models, "painter2": tiny_models["painter"]}
    app = torch_app(tmp_path, database_url, models)
    async with running(app), client_for(app, timeout=60) as client:
        made_default = await client.post(f"/v1/models/{PAINTER}/default", headers=ADMIN)
        assert made_default.status_code == 200, made_default.text
        loaded = await client.post(f"/v1/models/{PAINTER}/load", json={"wait": True}, headers=ADMIN)
        assert loaded.status_code == 200, loaded.text
        params = {"width": 64, "height": 64, "num_inference_steps": 2, "seed": 3}
        body = {"model": "local/painter2", "input": {"prompt": "a cat"}, "parameters": params}
        answer = await ok(client, **body, while_loading="fallback")
        assert answer["model"] == f"local:{PAINTER}"
        assert answer["selection"]["fallback_used"] is True
        assert "local:local/painter2 is loading" in answer["selection"]["fallback_reason"]
        assert png_size(base64.b64decode(answer["output"]["images"][0])) == (64, 64)
        for _ in range(300):  # it loaded in the background meanwhile
            status = await client.get("/v1/models/local/painter2/status", headers=ADMIN)
            if status.json()["runtime_status"] == "loaded":
                break
            await asyncio.sleep(0.1)
        direct = await ok(client, **body, while_loading="fallback")
        assert direct["model"] == "local/painter2"
        assert direct["selection"]["fallback_used"] is False
        assert direct["output"]["images"] == answer["output"]["images"]  # same weights, seed
