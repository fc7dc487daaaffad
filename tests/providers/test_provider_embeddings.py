"""The providers' embeddings on the adapters themselves, against the simulators: what goes
upstream (OpenAI's /embeddings, Azure's deployment URL, Gemini's batchEmbedContents),
how the answer is shaped (dimensions, normalize), inputs split into the runs each API
takes, and the answers a simulator cannot give (a short or malformed list)."""

from __future__ import annotations

import math

import pytest
from aiohttp import web

from pluggably.errors import BackendUnavailable, InvalidParameter
from pluggably.providers import google_embeddings, openai_embeddings
from pluggably.providers.base import ProviderCall
from pluggably.providers.directory import ProviderDirectory
from pluggably.providers.google import GoogleProvider
from pluggably.providers.openai_compat import OpenAICompatProvider
from tests.fixtures.canned import canned, upstream
from tests.fixtures.gemini_sim import GeminiSim, gemini_sim  # noqa: F401
from tests.fixtures.openai_sim import OpenAISim, openai_sim  # noqa: F401
from tests.fixtures.sim_vectors import cosine, embed, unit

KEY = {"api_key": "sk-test-0123456789abcdef"}
TEXTS = ["A man is eating food.", "Someone is having a meal.", "The stock market fell today."]


def call(model: str, texts: list[str], **parameters: object) -> ProviderCall:
    return ProviderCall(model, [], dict(parameters), "embedding", texts=texts)


def _length(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


async def test_openai_embeddings_send_floats_and_keep_usage(
    openai_sim: OpenAISim,  # noqa: F811
) -> None:
    async with upstream() as http:
        provider = OpenAICompatProvider("openai", http, openai_sim.base_url, embeddings=True)
        out = await provider.complete(call("text-embedding-3-small", TEXTS), KEY)
    sent = openai_sim.requests_to("/v1/embeddings")[-1].body
    assert sent == {"model": "text-embedding-3-small", "input": TEXTS, "encoding_format": "float"}
    assert out.embeddings[0] == pytest.approx(embed(TEXTS[0]), abs=1e-9)
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (15, 0)  # type: ignore[union-attr]
    assert out.upstream_model == "text-embedding-3-small"
    assert cosine(out.embeddings[0], out.embeddings[1]) > cosine(
        out.embeddings[0], out.embeddings[2]
    )


async def test_dimensions_go_upstream_only_to_models_that_take_them(
    openai_sim: OpenAISim,  # noqa: F811
) -> None:
    async with upstream() as http:
        provider = OpenAICompatProvider("openai", http, openai_sim.base_url, embeddings=True)
        small = await provider.complete(
            call("text-embedding-3-small", TEXTS[:1], dimensions=8), KEY
        )
        assert openai_sim.requests_to("/v1/embeddings")[-1].body["dimensions"] == 8
        ada = await provider.complete(call("text-embedding-ada-002", TEXTS[:1], dimensions=8), KEY)
        assert "dimensions" not in openai_sim.requests_to("/v1/embeddings")[-1].body
    # ada-002 cannot shorten its vectors: the gateway cuts and renormalizes them.
    assert ada.embeddings == [pytest.approx(unit(embed(TEXTS[0])[:8]))]
    assert len(small.embeddings[0]) == 8
    assert _length(small.embeddings[0]) == pytest.approx(1.0)


async def test_normalize_false_passes_the_vectors_as_they_are() -> None:
    def answer() -> web.Response:
        data = [{"object": "embedding", "index": 0, "embedding": [3.0, 4.0]}]
        return web.json_response({"object": "list", "data": data, "model": "m"})

    async with canned(answer) as url, upstream() as http:
        provider = OpenAICompatProvider("homelab", http, url, embeddings=True)
        raw = await provider.complete(call("nomic-embed-text", ["x"], normalize=False), {})
        unit_ = await provider.complete(call("nomic-embed-text", ["x"]), {})
    assert raw.embeddings == [[3.0, 4.0]]
    assert unit_.embeddings == [[0.6, 0.8]]
    assert raw.usage is None  # the server said nothing of tokens


async def test_more_inputs_than_one_request_takes_go_in_several(
    openai_sim: OpenAISim,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(openai_embeddings, "MAX_INPUTS", 2)
    texts = [f"text number {i}" for i in range(5)]
    async with upstream() as http:
        provider = OpenAICompatProvider("openai", http, openai_sim.base_url, embeddings=True)
        out = await provider.complete(call("text-embedding-3-small", texts), KEY)
    sent = [r.body["input"] for r in openai_sim.requests_to("/v1/embeddings")]
    assert sent == [texts[0:2], texts[2:4], texts[4:]]
    assert out.embeddings[4] == pytest.approx(embed(texts[4]), abs=1e-9)
    assert out.usage.prompt_tokens == 15  # type: ignore[union-attr]


async def test_azure_embeds_through_the_deployment_url(openai_sim: OpenAISim) -> None:  # noqa: F811
    async with upstream() as http:
        provider = OpenAICompatProvider("azure", http, openai_sim.url, azure=True, embeddings=True)
        with pytest.raises(Exception):  # noqa: B017, PT011 (the simulator serves no Azure paths)
            await provider.complete(call("my-embedder", ["x"]), {"api_key": "k" * 12})
    sent = openai_sim.requests[-1]
    assert sent.path == "/openai/deployments/my-embedder/embeddings?api-version=2024-10-21"
    assert sent.headers["api-key"] == "k" * 12
    assert sent.body == {"model": "my-embedder", "input": ["x"], "encoding_format": "float"}


async def test_a_short_or_malformed_answer_is_a_clean_error() -> None:
    answers = iter(
        [
            web.json_response({"data": [{"index": 0, "embedding": [1.0]}]}),  # one for two
            web.json_response({"data": [{"index": 0, "embedding": ["a"]}, {"embedding": [1]}]}),
            web.json_response({"no": "data"}),
        ]
    )
    async with canned(lambda: next(answers)) as url, upstream() as http:
        provider = OpenAICompatProvider("homelab", http, url, embeddings=True)
        for _ in range(3):
            with pytest.raises(BackendUnavailable, match="malformed"):
                await provider.complete(call("e", ["x", "y"]), {})


async def test_gemini_batches_embeddings_and_normalizes_cut_vectors(
    gemini_sim: GeminiSim,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gemini_sim.add_embedding_model("gemini-embedding-001")
    monkeypatch.setattr(google_embeddings, "MAX_INPUTS", 2)
    async with upstream() as http:
        provider = GoogleProvider("google", http, gemini_sim.url)
        out = await provider.complete(call("gemini-embedding-001", TEXTS, dimensions=16), KEY)
    batches = [
        r.body
        for r in gemini_sim.requests
        if r.path.endswith("gemini-embedding-001:batchEmbedContents")
    ]
    assert [len(b["requests"]) for b in batches] == [2, 1]
    assert batches[0]["requests"][0] == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": TEXTS[0]}]},
        "outputDimensionality": 16,
    }
    # Gemini's cut vectors are not unit length; the gateway's are.
    assert out.embeddings[0] == pytest.approx(unit(embed(TEXTS[0], 3072)[:16]))
    # No usage from Gemini: about 4 characters a token.
    assert out.usage.prompt_tokens == sum(math.ceil(len(t) / 4) for t in TEXTS)  # type: ignore[union-attr]


async def test_gemini_usage_is_read_when_the_api_sends_it() -> None:
    def answer() -> web.Response:
        body = {"embeddings": [{"values": [1.0, 0.0]}], "usageMetadata": {"promptTokenCount": 7}}
        return web.json_response(body)

    async with canned(answer) as url, upstream() as http:
        out = await GoogleProvider("google", http, url).complete(call("e", ["x"]), KEY)
    assert (out.embeddings, out.usage.prompt_tokens) == ([[1.0, 0.0]], 7)  # type: ignore[union-attr]


async def test_more_dimensions_than_the_model_gives_is_a_400(gemini_sim: GeminiSim) -> None:  # noqa: F811
    gemini_sim.add_embedding_model("embedding-001")  # takes no outputDimensionality
    async with upstream() as http:
        provider = GoogleProvider("google", http, gemini_sim.url)
        with pytest.raises(InvalidParameter, match="have 768"):
            await provider.complete(call("embedding-001", ["x"], dimensions=1000), KEY)
    sent = gemini_sim.requests[-1].body["requests"][0]
    assert "outputDimensionality" not in sent


def test_which_providers_declare_embeddings() -> None:
    directory = ProviderDirectory(None, {}, {})  # type: ignore[arg-type]
    declared = {n: "embedding" in directory.get(n).modalities for n in directory.names}  # type: ignore[union-attr]
    assert declared == {
        "anthropic": False,
        "azure": True,
        "deepseek": False,
        "google": True,
        "groq": False,
        "huggingface": False,
        "openai": True,
        "xai": False,
    }
    assert directory.default_model("openai", "embedding") == "text-embedding-3-small"
    assert directory.default_model("google", "embedding") == "gemini-embedding-001"
    assert directory.default_model("openai") == "gpt-4o-mini"
    assert ProviderDirectory.vendor_of("text-embedding-3-large") == "openai"
