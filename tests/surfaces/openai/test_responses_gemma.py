"""The Responses API over the bundled Gemma 3 270M GGUF (llama.cpp), under both base
URLs: plain, streamed, continued with previous_response_id, and retrieved. A tiny
base model: the tests assert plumbing (events, counts, the stored chain), not wit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from tests.conftest import running
from tests.surfaces.openai.test_openai_compat import gemma_app
from tests.surfaces.openai.test_responses import check_sequence, events_of, strict_sdk

GEMMA = "local/gemma"
pytestmark = pytest.mark.slow


@pytest.fixture
async def app(tmp_path: Path, database_url: str, gemma_gguf: Path) -> AsyncIterator[FastAPI]:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (the 'local' extra)")
    application = gemma_app(tmp_path, database_url, gemma_gguf)
    async with running(application):
        yield application


@pytest.mark.parametrize("base_url", ["http://testserver/openai/v1", "http://testserver/v1"])
async def test_gemma_answers_streams_continues_and_is_retrieved(
    app: FastAPI, base_url: str
) -> None:
    api = strict_sdk(app, base_url=base_url)
    try:
        first = await api.responses.create(
            model=GEMMA, input="Once upon a time", max_output_tokens=6, temperature=0
        )
        assert first.model == GEMMA
        assert first.output_text
        assert first.usage is not None
        assert first.usage.output_tokens == 6
        assert first.status == "incomplete"
        assert first.incomplete_details is not None
        assert first.incomplete_details.reason == "max_output_tokens"

        events = await events_of(
            api,
            model=GEMMA,
            input="and then",
            previous_response_id=first.id,
            max_output_tokens=6,
            temperature=0,
        )
        check_sequence(events)
        kinds = [e.type for e in events]
        assert kinds[:4] == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
        ]
        assert kinds[-4:] == [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.incomplete",
        ]
        second = events[-1].response
        deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
        assert "".join(deltas) == second.output_text
        assert second.output_text

        # The earlier turns reached the model: the same input alone is a shorter prompt.
        alone = await api.responses.create(
            model=GEMMA, input="and then", max_output_tokens=1, temperature=0
        )
        assert second.usage.input_tokens > alone.usage.input_tokens + first.usage.output_tokens  # type: ignore[union-attr]

        assert (await api.responses.retrieve(second.id)).model_dump() == second.model_dump()
        items = await api.responses.input_items.list(second.id, order="asc")
        assert [i.type for i in items.data] == ["message"] * 3
    finally:
        await api.close()
