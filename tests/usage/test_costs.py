"""What a request cost, over HTTP: ``usage.cost_usd`` of native answers (JSON and
streams) and of their request records, at the shipped prices or the operator's; null for
a model without a price; 0 for a local model unless the operator prices local models;
tokens and spend per provider and model in /metrics.

The OpenAI simulator reports usage (a token a word); local models run on a fake runtime
(the scheduler's factory seam) that reports fixed token counts."""

from __future__ import annotations

import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from pluggably.runtimes.base import LocalCall, LocalResult, ModelSpec
from tests.conftest import ADMIN_KEY, client_for, generate, running, sse_frames
from tests.fixtures.openai_sim import OpenAISim
from tests.generation.test_generate import gen_app

ADMIN = {"X-API-Key": ADMIN_KEY}
LOCAL_MODEL = "local/zz-priced"
LOCAL_TOKENS = (7, 3)  # what the fake runtime reports: prompt, completion


def dollars(prompt: int, completion: int, input_per_mtok: float, output_per_mtok: float) -> float:
    return round(prompt * input_per_mtok / 1e6 + completion * output_per_mtok / 1e6, 12)


async def answer(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await generate(client, ADMIN, **body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def recorded_usage(client: httpx.AsyncClient, request_id: str) -> Any:
    record = (await client.get(f"/v1/requests/{request_id}", headers=ADMIN)).json()
    assert record["status"] == "completed"
    return record["result"]["usage"]


async def test_a_json_answer_costs_its_tokens_at_the_shipped_price(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        body = await answer(client, model="openai:gpt-4o-mini", input={"prompt": "hello there"})

        usage = body["usage"]
        assert usage["completion_tokens"] == 3
        expected = dollars(usage["prompt_tokens"], 3, 0.15, 0.60)
        assert usage["cost_usd"] == expected
        assert await recorded_usage(client, body["request_id"]) == usage


async def test_the_operators_prices_replace_and_extend_the_shipped_ones(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    openai_sim.models.append("house-model-v2")
    prices = {
        "openai:gpt-4o-mini*": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        "openai:house-model*": {"input_per_mtok": 3.0, "output_per_mtok": 4.0},
    }
    app = gen_app(tmp_path, database_url, openai_sim, prices=prices)
    async with running(app), client_for(app) as client:
        mini = (await answer(client, model="openai:gpt-4o-mini", input={"prompt": "a b"}))["usage"]
        house = await answer(client, model="openai:house-model-v2", input={"prompt": "a b"})

        assert mini["cost_usd"] == dollars(mini["prompt_tokens"], mini["completion_tokens"], 1, 2)
        usage = house["usage"]
        assert usage["cost_usd"] == dollars(
            usage["prompt_tokens"], usage["completion_tokens"], 3, 4
        )
        assert await recorded_usage(client, house["request_id"]) == usage


async def test_a_model_without_a_price_has_an_unknown_cost(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    openai_sim.models.append("house-model-v2")
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        body = await answer(client, model="openai:house-model-v2", input={"prompt": "hello"})

        assert body["usage"]["completion_tokens"] == 2  # "Echo: ", "hello"
        assert body["usage"]["cost_usd"] is None
        assert (await recorded_usage(client, body["request_id"]))["cost_usd"] is None


async def test_a_stream_carries_its_cost_in_the_complete_frame(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    openai_sim.set_reply("gpt-4o", "one two three four five")
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        frames = await sse_frames(client, ADMIN, model="openai:gpt-4o", input={"prompt": "count"})

        complete = frames[-2]
        assert complete["event"] == "complete"
        usage = complete["usage"]
        assert usage["completion_tokens"] == 5
        assert usage["cost_usd"] == dollars(usage["prompt_tokens"], 5, 2.50, 10.00)
        assert await recorded_usage(client, complete["request_id"]) == usage


async def test_generated_images_cost_their_per_image_price_without_tokens(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        body = await answer(
            client,
            model="openai:dall-e-2",
            modality="image",
            input={"prompt": "a red square"},
            parameters={"width": 256, "height": 256, "num_images": 2},
        )

        assert len(body["output"]["images"]) == 2
        expected = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        assert body["usage"] == {**expected, "cost_usd": 0.04}
        assert await recorded_usage(client, body["request_id"]) == body["usage"]


async def test_embeddings_cost_their_input_tokens(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        texts = ["one two three", "four five"]
        body = await answer(client, model="openai:text-embedding-3-small", input={"texts": texts})

        assert body["usage"]["prompt_tokens"] == 5  # the simulator: a token a word
        assert body["usage"]["cost_usd"] == dollars(5, 0, 0.02, 0)


class FakeRuntime:
    """A local text model that answers at once with fixed token counts."""

    kind = "fake"
    memory_bytes = 1

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    def load(self) -> None:
        pass

    def unload(self) -> None:
        pass

    def stream(self, call: LocalCall, cancel: threading.Event) -> Generator[str, None, LocalResult]:
        yield "local answer"
        prompt, completion = LOCAL_TOKENS
        return LocalResult(text="local answer", prompt_tokens=prompt, completion_tokens=completion)

    def generate(self, call: LocalCall, cancel: threading.Event) -> LocalResult:
        pieces = self.stream(call, cancel)
        while True:
            try:
                next(pieces)
            except StopIteration as done:
                result: LocalResult = done.value
                return result


def local_app(tmp_path: Path, database_url: str, sim: OpenAISim, **settings: Any) -> FastAPI:
    """An app with one local GGUF model (the fake runtime runs it)."""
    gguf = tmp_path / "data" / "models" / f"{LOCAL_MODEL.removeprefix('local/')}.gguf"
    gguf.parent.mkdir(parents=True, exist_ok=True)
    gguf.write_bytes(b"GGUF" + b"\0" * 64)
    return gen_app(tmp_path, database_url, sim, preload_defaults=False, **settings)


@pytest.mark.parametrize(
    ("prices", "expected"),
    [
        ({}, 0.0),
        ({"local:*": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}, dollars(7, 3, 1, 2)),
    ],
    ids=["unpriced", "priced"],
)
async def test_a_local_model_costs_nothing_unless_the_operator_prices_it(
    tmp_path: Path,
    database_url: str,
    openai_sim: OpenAISim,
    prices: dict[str, Any],
    expected: float,
) -> None:
    app = local_app(tmp_path, database_url, openai_sim, prices=prices)
    async with running(app), client_for(app) as client:
        app.state.container.scheduler.factory = FakeRuntime
        body = await answer(client, model=LOCAL_MODEL, input={"prompt": "hi"})

        assert body["provider"] == "local"
        assert body["usage"] == {
            "prompt_tokens": 7,
            "completion_tokens": 3,
            "total_tokens": 10,
            "cost_usd": expected,
        }
        assert await recorded_usage(client, body["request_id"]) == body["usage"]


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one metric in a /metrics page, by their labels."""
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def test_metrics_count_tokens_and_spend_per_provider_and_model(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    openai_sim.models.append("house-model-v2")
    app = gen_app(tmp_path, database_url, openai_sim)
    async with running(app), client_for(app) as client:
        first = (await answer(client, model="openai:gpt-4o-mini", input={"prompt": "a"}))["usage"]
        second = (await answer(client, model="gpt-4o-mini", input={"prompt": "a b c"}))["usage"]
        await answer(client, model="openai:house-model-v2", input={"prompt": "a"})
        page = (await client.get("/metrics", headers=ADMIN)).text

    mini = (("model", "gpt-4o-mini"), ("provider", "openai"))
    house = (("model", "house-model-v2"), ("provider", "openai"))
    tokens = samples(page, "pluggably_usage_tokens_total")
    prompt = first["prompt_tokens"] + second["prompt_tokens"]
    completion = first["completion_tokens"] + second["completion_tokens"]
    assert tokens[(("kind", "prompt"), *mini)] == prompt
    assert tokens[(("kind", "completion"), *mini)] == completion
    assert tokens[(("kind", "completion"), *house)] == 2
    spend = samples(page, "pluggably_usage_cost_usd_total")
    assert spend[mini] == pytest.approx(first["cost_usd"] + second["cost_usd"], abs=1e-15)
    assert house not in spend  # no price: it adds nothing, and shows no series
