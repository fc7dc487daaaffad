"""The Responses API (/openai/v1/responses) driven by the official `openai` SDK with
strict response validation, against the OpenAI simulator: plain and streamed (OpenAI's
event sequence), instructions, previous_response_id over stored responses, retrieve,
delete, input_items, function tools and their outputs, text.format, max_output_tokens,
ownership, and OpenAI's 400 for what is not served."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from tests.conftest import ADMIN_KEY, client_for, new_user, running
from tests.fixtures.openai_sim import DEFAULT_MODELS, OpenAISim, call_id, reasoning_of
from tests.generation.test_generate import gen_app
from tests.surfaces.openai.test_openai_compat import PNG_B64, error_of

MODEL = "openai:gpt-4o-mini"
BASE = "http://testserver/openai/v1"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city now.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
# OpenAI's event sequence of one streamed text answer.
TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    *["response.output_text.delta"] * 3,
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def strict_sdk(app: FastAPI, key: str = ADMIN_KEY, base_url: str = BASE) -> openai.AsyncOpenAI:
    """The SDK as OpenAI's own tests run it: a missing or ill-typed field fails."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return openai.AsyncOpenAI(
        base_url=base_url,
        api_key=key,
        max_retries=0,
        http_client=httpx.AsyncClient(transport=transport, timeout=60),
        _strict_response_validation=True,
    )


@pytest.fixture
async def app(tmp_path: Path, database_url: str, openai_sim: OpenAISim) -> AsyncIterator[FastAPI]:
    application = gen_app(tmp_path, database_url, openai_sim)
    async with running(application):
        yield application


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[openai.AsyncOpenAI]:
    client = strict_sdk(app)
    yield client
    await client.close()


def sent(sim: OpenAISim) -> dict[str, Any]:
    body: dict[str, Any] = sim.requests_to("/v1/chat/completions")[-1].body
    return body


async def events_of(api: openai.AsyncOpenAI, **body: Any) -> list[Any]:
    stream = await api.responses.create(stream=True, **body)
    return [event async for event in stream]


def check_sequence(events: list[Any]) -> None:
    """Numbered 0, 1, 2, …; one response id in every lifecycle event."""
    assert [e.sequence_number for e in events] == list(range(len(events)))
    ids = {e.response.id for e in events if hasattr(e, "response")}
    assert len(ids) == 1


async def test_a_string_input_answers_a_completed_response_in_openai_shape(
    api: openai.AsyncOpenAI, openai_sim: OpenAISim
) -> None:
    response = await api.responses.create(
        model=MODEL, input="hello there", instructions="Be brief.", temperature=0.2, top_p=0.9
    )
    assert response.object == "response"
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.output_text == "Echo: hello there"
    assert response.model == MODEL
    assert response.instructions == "Be brief."
    [message] = response.output
    assert message.type == "message"
    assert message.id.startswith("msg_")
    assert response.usage is not None
    assert response.usage.output_tokens == 3
    assert response.usage.total_tokens == response.usage.input_tokens + 3
    body = sent(openai_sim)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello there"},
    ]
    assert (body["temperature"], body["top_p"]) == (0.2, 0.9)


async def test_a_stream_sends_openai_event_sequence_and_the_whole_response_last(
    api: openai.AsyncOpenAI, openai_sim: OpenAISim
) -> None:
    openai_sim.set_reply("gpt-4o-mini", "one two three")
    events = await events_of(api, model=MODEL, input="count")
    assert [e.type for e in events] == TEXT_EVENTS
    check_sequence(events)
    assert events[0].response.status == "in_progress"
    assert events[0].response.output == []
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == (
        "one two three"
    )
    done = events[-1].response
    assert done.status == "completed"
    assert done.output_text == "one two three"
    assert done.output[0].id == events[2].item.id == events[4].item_id
    assert done.usage is not None
    assert done.usage.output_tokens == 3


async def test_the_sdk_stream_helper_assembles_the_final_response(
    api: openai.AsyncOpenAI,
) -> None:
    async with api.responses.stream(model=MODEL, input="streamed") as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == "Echo: streamed"
    assert final.output_text == "Echo: streamed"
    assert (await api.responses.retrieve(final.id)).output_text == "Echo: streamed"


async def test_previous_response_id_sends_the_earlier_turns_in_order_without_their_instructions(
    api: openai.AsyncOpenAI, openai_sim: OpenAISim
) -> None:
    first = await api.responses.create(model=MODEL, input="first", instructions="Be brief.")
    second = await api.responses.create(model=MODEL, input="second", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    assert sent(openai_sim)["messages"] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "Echo: first"},
        {"role": "user", "content": "second"},
    ]
    third = await events_of(
        api, model=MODEL, input="third", previous_response_id=second.id, instructions="Hi."
    )
    assert third[-1].response.output_text == "Echo: third"
    assert [m["content"] for m in sent(openai_sim)["messages"]] == [
        "Hi.",
        "first",
        "Echo: first",
        "second",
        "Echo: second",
        "third",
    ]


async def test_retrieve_answers_the_stored_response_as_it_was_returned(
    api: openai.AsyncOpenAI,
) -> None:
    created = await api.responses.create(model=MODEL, input="keep me", metadata={"k": "v"})
    again = await api.responses.retrieve(created.id)
    assert again.model_dump() == created.model_dump()
    streamed = await events_of(api, model=MODEL, input="streamed")
    final = streamed[-1].response
    assert (await api.responses.retrieve(final.id)).model_dump() == final.model_dump()


async def test_a_deleted_response_is_gone(api: openai.AsyncOpenAI) -> None:
    created = await api.responses.create(model=MODEL, input="delete me")
    # The SDK's delete returns nothing; the body is OpenAI's deletion object.
    raw = await api.responses.with_raw_response.delete(created.id)
    assert raw.http_request.method == "DELETE"
    assert json.loads(raw.content) == {"id": created.id, "object": "response", "deleted": True}
    with pytest.raises(openai.NotFoundError) as missing:
        await api.responses.retrieve(created.id)
    assert error_of(missing.value)["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError):
        await api.responses.delete(created.id)
    with pytest.raises(openai.BadRequestError) as cannot:
        await api.responses.create(model=MODEL, input="more", previous_response_id=created.id)
    assert error_of(cannot.value)["param"] == "previous_response_id"


async def test_input_items_list_the_conversation_that_formed_the_input_in_pages(
    api: openai.AsyncOpenAI,
) -> None:
    first = await api.responses.create(model=MODEL, input="first")
    second = await api.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[
            {"role": "developer", "content": "Mind the order."},
            {"role": "user", "content": [{"type": "input_text", "text": "second"}]},
        ],
    )
    page = await api.responses.input_items.list(second.id, order="asc", limit=2)
    assert [item.type for item in page.data] == ["message", "message"]
    assert page.has_more is True
    texts = [
        json.loads(item.to_json())["content"][0]["text"]
        async for item in api.responses.input_items.list(second.id, order="asc", limit=2)
    ]
    assert texts == ["first", "Echo: first", "Mind the order.", "second"]
    newest = await api.responses.input_items.list(second.id)
    assert [i.role for i in newest.data] == ["user", "developer", "assistant", "user"]  # type: ignore[union-attr]
    assert newest.has_more is False
    assert newest.data[2].id == first.output[0].id


async def test_a_function_call_and_its_output_continue_the_response(
    api: openai.AsyncOpenAI, openai_sim: OpenAISim
) -> None:
    asked = await api.responses.create(
        model=MODEL,
        input="What is the weather in Paris?",
        tools=[WEATHER],  # type: ignore[list-item]
    )
    [call] = asked.output
    assert call.type == "function_call"
    assert call.id is not None
    assert call.id.startswith("fc_")
    assert call.name == "get_weather"
    assert call.call_id == call_id(sent(openai_sim)["messages"], 0)
    assert json.loads(call.arguments) == {"city": "city-1"}
    assert sent(openai_sim)["tools"] == [
        {"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}
    ]
    answered = await api.responses.create(
        model=MODEL,
        previous_response_id=asked.id,
        tools=[WEATHER],  # type: ignore[list-item]
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )
    assert answered.output_text == "The tool said: sunny"
    upstream = sent(openai_sim)["messages"]
    assert upstream[1]["tool_calls"][0]["id"] == call.call_id
    assert upstream[2] == {"role": "tool", "content": "sunny", "tool_call_id": call.call_id}


async def test_a_streamed_function_call_sends_its_arguments_as_deltas(
    api: openai.AsyncOpenAI,
) -> None:
    events = await events_of(api, model=MODEL, input="weather?", tools=[WEATHER])
    check_sequence(events)
    kinds = [e.type for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert "response.function_call_arguments.delta" in kinds
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    [call] = events[-1].response.output
    assert call.type == "function_call"
    assert json.loads(call.arguments) == {"city": "city-1"}
    assert events[2].item.id == call.id


async def test_a_json_schema_text_format_reaches_the_upstream(
    api: openai.AsyncOpenAI, openai_sim: OpenAISim
) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    response = await api.responses.create(
        model=MODEL,
        input="a city as json",
        text={"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}},
    )
    assert set(json.loads(response.output_text)) == {"city"}
    assert sent(openai_sim)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "city", "schema": schema, "strict": True},
    }
    assert response.text is not None
    assert response.text.format is not None
    assert response.text.format.type == "json_schema"


async def test_max_output_tokens_cuts_the_answer_as_incomplete(
    api: openai.AsyncOpenAI, openai_sim: OpenAISim
) -> None:
    response = await api.responses.create(model=MODEL, input="one two three", max_output_tokens=2)
    assert sent(openai_sim)["max_tokens"] == 2
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete"  # type: ignore[union-attr]
    events = await events_of(api, model=MODEL, input="one two three", max_output_tokens=2)
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"


async def test_another_users_response_is_not_found(app: FastAPI) -> None:
    admin = strict_sdk(app)
    async with client_for(app) as client:
        bob_headers = await new_user(client, "bob")
    bob = strict_sdk(app, key=bob_headers["Authorization"].removeprefix("Bearer "))
    try:
        mine = await admin.responses.create(model=MODEL, input="mine")
        with pytest.raises(openai.NotFoundError):
            await bob.responses.retrieve(mine.id)
        with pytest.raises(openai.NotFoundError):
            await bob.responses.delete(mine.id)
        with pytest.raises(openai.NotFoundError):
            await bob.responses.input_items.list(mine.id)
        with pytest.raises(openai.BadRequestError) as cannot:
            await bob.responses.create(model=MODEL, input="x", previous_response_id=mine.id)
        assert error_of(cannot.value)["message"] == (
            f"Previous response with id '{mine.id}' not found."
        )
        assert (await admin.responses.retrieve(mine.id)).id == mine.id
    finally:
        await admin.close()
        await bob.close()


async def test_a_response_not_stored_cannot_be_retrieved_or_continued(
    api: openai.AsyncOpenAI,
) -> None:
    response = await api.responses.create(model=MODEL, input="forget me", store=False)
    assert response.to_dict()["store"] is False
    with pytest.raises(openai.NotFoundError):
        await api.responses.retrieve(response.id)
    with pytest.raises(openai.BadRequestError):
        await api.responses.create(model=MODEL, input="x", previous_response_id=response.id)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"background": True}, "background"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].type",
        ),
        ({"tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
    ],
)
async def test_what_is_not_served_is_a_400_naming_the_field(
    api: openai.AsyncOpenAI, extra: dict[str, Any], param: str
) -> None:
    body: dict[str, Any] = {"model": MODEL, "input": "hi", **extra}
    with pytest.raises(openai.BadRequestError) as refused:
        await api.responses.create(**body)
    assert error_of(refused.value)["param"] == param


@pytest.fixture
async def reasoner(
    tmp_path: Path, database_url: str, make_openai_sim: Callable[..., OpenAISim]
) -> AsyncIterator[tuple[openai.AsyncOpenAI, OpenAISim]]:
    """A simulator that also serves a DeepSeek-style reasoner (shows its reasoning)
    and an o-series model (takes reasoning_effort)."""
    sim = make_openai_sim([*DEFAULT_MODELS, "deepseek-reasoner", "o3-mini"])
    application = gen_app(tmp_path, database_url, sim)
    async with running(application):
        client = strict_sdk(application)
        yield client, sim
        await client.close()


async def test_visible_reasoning_is_a_reasoning_item_before_the_message(
    reasoner: tuple[openai.AsyncOpenAI, OpenAISim],
) -> None:
    api, sim = reasoner
    response = await api.responses.create(model="openai:deepseek-reasoner", input="hi")
    [thought, message] = response.output
    assert thought.type == "reasoning"
    assert thought.summary[0].text == reasoning_of([{"role": "user", "content": "hi"}])
    assert message.type == "message"
    assert response.output_text == "Echo: hi"
    events = await events_of(api, model="openai:deepseek-reasoner", input="hi")
    check_sequence(events)
    kinds = [e.type for e in events]
    assert kinds[2:4] == ["response.output_item.added", "response.reasoning_summary_part.added"]
    thinking = [e.delta for e in events if e.type == "response.reasoning_summary_text.delta"]
    assert "".join(thinking) == thought.summary[0].text
    assert kinds.index("response.reasoning_summary_part.done") < kinds.index(
        "response.output_text.delta"
    )
    assert [item.type for item in events[-1].response.output] == ["reasoning", "message"]
    await api.responses.create(model="openai:o3-mini", input="hi", reasoning={"effort": "high"})
    assert sent(sim)["reasoning_effort"] == "high"


async def test_a_stream_failing_after_its_start_ends_in_response_failed_and_is_not_stored(
    api: openai.AsyncOpenAI, openai_sim: OpenAISim
) -> None:
    openai_sim.set_reply("gpt-4o-mini", "a b c d e f")
    openai_sim.break_stream_after(2)
    events = await events_of(api, model=MODEL, input="hi")
    check_sequence(events)
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "a b "
    failed = events[-1]
    assert failed.type == "response.failed"
    assert failed.response.status == "failed"
    assert failed.response.error.code == "server_error"
    assert failed.response.error.message
    with pytest.raises(openai.NotFoundError):
        await api.responses.retrieve(failed.response.id)


async def test_a_failure_before_the_stream_starts_is_the_errors_own_status(
    api: openai.AsyncOpenAI, openai_sim: OpenAISim
) -> None:
    openai_sim.fail_next(status=429, retry_after=3)
    with pytest.raises(openai.RateLimitError) as limited:
        await api.responses.create(model=MODEL, input="hi", stream=True)
    assert error_of(limited.value)["code"] == "rate_limited"
    with pytest.raises(openai.NotFoundError) as unknown:
        await api.responses.create(model="openai:no-such-model", input="hi")
    assert error_of(unknown.value)["code"] == "model_not_found"


async def test_a_long_string_input_is_one_user_message(
    api: openai.AsyncOpenAI, openai_sim: OpenAISim
) -> None:
    text = "word " * 3000
    response = await api.responses.create(model=MODEL, input=text)
    assert response.status == "completed"
    assert sent(openai_sim)["messages"] == [{"role": "user", "content": text}]


async def test_items_sent_back_by_the_client_form_the_native_turns(
    api: openai.AsyncOpenAI, openai_sim: OpenAISim
) -> None:
    """A client that keeps the conversation itself (store: false) sends the earlier
    output items back: one assistant turn of text and calls, then the call's result."""
    call = {"type": "function_call", "call_id": "call_1", "name": "get_weather"}
    items: list[Any] = [
        {"role": "user", "content": "weather?"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "t"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
        {**call, "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ]
    response = await api.responses.create(
        model=MODEL,
        store=False,
        tools=[WEATHER],  # type: ignore[list-item]
        input=items,
    )
    assert response.output_text == "The tool said: sunny"
    assistant = {
        "role": "assistant",
        "content": "Looking.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert sent(openai_sim)["messages"] == [
        {"role": "user", "content": "weather?"},
        assistant,
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
    ]


async def test_an_input_image_reaches_the_upstream_and_a_link_is_refused(
    api: openai.AsyncOpenAI, openai_sim: OpenAISim
) -> None:
    data_url = f"data:image/png;base64,{PNG_B64}"
    parts: list[dict[str, Any]] = [
        {"type": "input_text", "text": "what is this"},
        {"type": "input_image", "image_url": data_url, "detail": "auto"},
    ]
    response = await api.responses.create(
        model="openai:gpt-4o",
        input=[{"role": "user", "content": parts}],  # type: ignore[misc, list-item]
    )
    assert response.output_text == "Echo: what is this [1 image]"
    upstream = sent(openai_sim)["messages"][-1]["content"]
    assert upstream[1]["image_url"]["url"] == data_url
    parts[1]["image_url"] = "https://example.com/cat.png"
    with pytest.raises(openai.BadRequestError) as refused:
        await api.responses.create(
            model="openai:gpt-4o",
            input=[{"role": "user", "content": parts}],  # type: ignore[misc, list-item]
        )
    assert error_of(refused.value)["param"] == "input[0].content[1].image_url"
