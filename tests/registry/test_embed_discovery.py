"""Discovery of embedding models in the models directory: sentence-transformers
folders (before the generic transformers rule) and GGUF embedders recognised by their
header (pooling type, non-causal attention, encoder architecture); rerankers and text
models stay what they are. Hub search hints embedding pipelines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from pluggably.app import create_app
from pluggably.config import Settings
from tests.conftest import ADMIN_KEY, client_for, make_settings, running
from tests.fixtures.hf_hub import FakeHub

ADMIN = {"X-API-Key": ADMIN_KEY}


def write_header(path: Path, arch: str, **fields: Any) -> None:
    """A GGUF header (no tensors) of architecture ``arch`` with ``{arch}.<key>`` fields:
    ints, bools (``attention.causal``) as the gguf package writes them."""
    import gguf

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_token_list(["[CLS]", "[SEP]", "▁hello"])
    for key, value in fields.items():
        name = f"{arch}.{key}"
        if isinstance(value, bool):
            writer.add_bool(name, value)
        else:
            writer.add_uint32(name, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_sentence_transformers(folder: Path, *, pooling: bool = True) -> None:
    folder.mkdir(parents=True)
    (folder / "modules.json").write_text(json.dumps([{"idx": 0, "path": ""}]))
    (folder / "config.json").write_text(json.dumps({"hidden_size": 768}))
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128}))
    if pooling:
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(
            json.dumps({"word_embedding_dimension": 1024})
        )


@pytest.fixture
def populated(tmp_path: Path, database_url: str) -> Settings:
    settings = make_settings(tmp_path, database_url)
    models = settings.models_dir
    write_sentence_transformers(models / "st-pooled")
    write_sentence_transformers(models / "st-plain", pooling=False)
    (models / "st-config-only").mkdir(parents=True)
    (models / "st-config-only" / "config_sentence_transformers.json").write_text("{}")
    write_header(models / "mean.gguf", "bert", pooling_type=1, embedding_length=384)
    write_header(models / "cls.gguf", "qwen3", pooling_type=2, context_length=8192)
    write_header(models / "bidirectional.gguf", "llama", **{"attention.causal": False})
    write_header(models / "nomic.gguf", "nomic-bert", embedding_length=768)
    write_header(models / "t5enc.gguf", "t5encoder")
    write_header(models / "reranker.gguf", "bert", pooling_type=4)
    write_header(models / "chat.gguf", "llama", context_length=4096)
    write_header(models / "causal.gguf", "qwen2", **{"attention.causal": True})
    return settings


async def _models(client: httpx.AsyncClient, **params: str) -> dict[str, dict[str, Any]]:
    response = await client.get("/v1/models", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    return {m["id"]: m for m in response.json()["models"]}


async def test_embedding_models_are_recognised_by_folder_and_header(populated: Settings) -> None:
    app = create_app(populated)
    async with running(app), client_for(app) as client:
        embedders = await _models(client, modality="embedding")
        assert sorted(embedders) == [
            "local/bidirectional",
            "local/cls",
            "local/mean",
            "local/nomic",
            "local/st-config-only",
            "local/st-plain",
            "local/st-pooled",
            "local/t5enc",
        ]
        pooled = embedders["local/st-pooled"]
        assert (pooled["format"], pooled["modality"]) == ("sentence_transformers", "embedding")
        assert pooled["capabilities"]["embedding_dimensions"] == 1024  # the pooling's width
        assert pooled["capabilities"]["max_context_tokens"] == 128
        assert pooled["capabilities"]["output_formats"] == ["embedding"]
        # Without a pooling config, the transformer's hidden size.
        assert embedders["local/st-plain"]["capabilities"]["embedding_dimensions"] == 768
        assert embedders["local/st-config-only"]["capabilities"]["embedding_dimensions"] is None
        mean = embedders["local/mean"]
        assert (mean["format"], mean["capabilities"]["embedding_dimensions"]) == ("gguf", 384)
        assert mean["capabilities"]["tool_calling"] is None
        assert embedders["local/cls"]["capabilities"]["max_context_tokens"] == 8192

        texts = await _models(client, modality="text")
        assert sorted(texts) == ["local/causal", "local/chat", "local/reranker"]
        assert texts["local/chat"]["capabilities"]["output_formats"] == ["text"]

        schema = (await client.get("/v1/schema?model=local/mean", headers=ADMIN)).json()
        assert schema["modality"] == "embedding"
        assert schema["schema"]["properties"]["dimensions"]["maximum"] == 384
        assert schema["schema"]["additionalProperties"] is False
        unknown = (await client.get("/v1/schema?model=local/nomic", headers=ADMIN)).json()
        assert unknown["schema"]["properties"]["dimensions"]["maximum"] == 768


async def test_a_sentence_transformers_folder_registered_by_hand_is_an_embedder(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url)
    app = create_app(settings)
    async with running(app), client_for(app) as client:
        write_sentence_transformers(settings.models_dir / "later" / "st")
        body = {"model": {"id": "my-embedder"}, "source": {"type": "local", "uri": "later/st"}}
        response = await client.post("/v1/models/download", json=body, headers=ADMIN)
        assert response.status_code == 202, response.text
        model = (await client.get("/v1/models/my-embedder", headers=ADMIN)).json()
        assert (model["modality"], model["format"]) == ("embedding", "sentence_transformers")


async def test_hub_search_hints_and_filters_embedding_models(
    tmp_path: Path, database_url: str, hf_hub: FakeHub
) -> None:
    hf_hub.add_model(
        "acme/minilm",
        {"modules.json": b"[]"},
        pipeline_tag="sentence-similarity",
        library_name="sentence-transformers",
        downloads=30,
    )
    hf_hub.add_model(
        "acme/bge-GGUF",
        {"bge-F16.gguf": b"GGUF"},
        tags=("gguf",),
        pipeline_tag="feature-extraction",
        library_name="gguf",
        downloads=20,
    )
    hf_hub.add_model(
        "acme/chat-GGUF",
        {"chat-Q4_0.gguf": b"GGUF"},
        tags=("gguf",),
        pipeline_tag="text-generation",
        library_name="gguf",
        downloads=10,
    )
    app = create_app(make_settings(tmp_path, database_url, hf_endpoint=hf_hub.url))
    async with running(app), client_for(app) as client:
        everything = await client.get("/v1/models/search", headers=ADMIN)
        hints = {r["id"]: r["modality_hints"] for r in everything.json()["results"]}
        assert hints == {
            "acme/minilm": ["embedding"],
            "acme/bge-GGUF": ["embedding"],
            "acme/chat-GGUF": ["text"],
        }
        only = await client.get(
            "/v1/models/search", params={"modality": "embedding"}, headers=ADMIN
        )
        assert [r["id"] for r in only.json()["results"]] == ["acme/minilm", "acme/bge-GGUF"]
