"""Review of the Responses API (#18): item ids unique in a conversation (so that
input_items pages by ``after`` end), messages need content, metadata within
OpenAI's bounds. Driven with the openai SDK in strict validation over the simulator."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from pluggably.deltas import ToolCallDelta
from pluggably.generation.events import Completed, Event
from pluggably.generation.schemas import GenerateResponse
from pluggably.surfaces.openai.responses_shapes import ResponsesRequest
from pluggably.surfaces.openai.responses_stream import ResponsesEventWriter
from pluggably.surfaces.openai.responses_translate import ResponseHead
from tests.surfaces.openai.test_openai_compat import error_of
from tests.surfaces.openai.test_responses import MODEL, api, app  # noqa: F401


async def test_an_item_id_given_twice_is_refused_so_input_item_pages_end(
    api: openai.AsyncOpenAI,  # noqa: F811
) -> None:
    """``after`` names an item by id: two items with one id would page forever."""
    twice: list[Any] = [
        {"id": "msg_same", "role": "user", "content": "a"},
        {"id": "msg_same", "role": "user", "content": "b"},
    ]
    with pytest.raises(openai.BadRequestError) as refused:
        await api.responses.create(model=MODEL, input=twice)
    assert error_of(refused.value)["param"] == "input[1].id"
    assert error_of(refused.value)["message"] == (
        "Duplicate item found with id 'msg_same'. Remove duplicate items from your input "
        "and try again."
    )
    first = await api.responses.create(model=MODEL, input="first")
    again: list[Any] = [
        first.output[0].to_dict(),  # the answer sent back beside previous_response_id
        {"role": "user", "content": "second"},
    ]
    with pytest.raises(openai.BadRequestError) as resent:
        await api.responses.create(model=MODEL, input=again, previous_response_id=first.id)
    assert error_of(resent.value)["param"] == "input[0].id"
    # Every item of a conversation pages once, in order.
    mine: list[Any] = [{"id": "msg_mine", "role": "user", "content": "second"}]
    second = await api.responses.create(model=MODEL, previous_response_id=first.id, input=mine)
    ids = [item.id async for item in api.responses.input_items.list(second.id, limit=1)]
    assert ids == ["msg_mine", first.output[0].id, ids[2]]
    assert len(set(ids)) == 3


@pytest.mark.parametrize(
    ("metadata", "param"),
    [
        ({f"k{i}": "v" for i in range(17)}, "metadata"),
        ({"k" * 65: "v"}, "metadata"),
        ({"k": "v" * 513}, "metadata.k"),
    ],
)
async def test_metadata_beyond_openais_bounds_is_refused(
    api: openai.AsyncOpenAI,  # noqa: F811
    metadata: dict[str, str],
    param: str,
) -> None:
    """16 pairs, keys of 64 characters, values of 512: what OpenAI stores, and what
    every stored response here repeats."""
    with pytest.raises(openai.BadRequestError) as refused:
        await api.responses.create(model=MODEL, input="hi", metadata=metadata)
    assert error_of(refused.value)["param"].startswith(param)
    bounded = {f"{i:0>64}": "v" * 512 for i in range(16)}
    response = await api.responses.create(model=MODEL, input="hi", metadata=bounded)
    assert response.metadata == bounded


async def test_a_message_without_content_is_refused(
    api: openai.AsyncOpenAI,  # noqa: F811
) -> None:
    bare: list[Any] = [{"role": "user"}]
    with pytest.raises(openai.BadRequestError) as refused:
        await api.responses.create(model=MODEL, input=bare)
    assert error_of(refused.value)["param"] == "input[0].content"
    assert error_of(refused.value)["message"] == "A message needs content."


def _answer(calls: list[tuple[str, str, str]]) -> GenerateResponse:
    return GenerateResponse.model_validate(
        {
            "request_id": "req_1",
            "model": MODEL,
            "provider": "openai",
            "modality": "text",
            "output": {
                "tool_calls": [
                    {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                    for i, n, a in calls
                ]
            },
            "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
            "finish_reason": "tool_calls",
            "selection": {
                "selected_model": MODEL,
                "selected_provider": "openai",
                "fallback_used": False,
                "fallback_reason": None,
                "attempts": [],
            },
            "timings": {"total_ms": 1},
        }
    )


def test_arguments_of_parallel_calls_that_interleave_reach_the_stored_answer() -> None:
    """An upstream may open both calls before their arguments come (one chunk naming
    two calls, then their pieces): each call's arguments stay its own."""
    writer = ResponsesEventWriter(ResponseHead.of(ResponsesRequest(model=MODEL), "req_1"))
    events: list[Event] = [
        ToolCallDelta(0, id="call_a", name="a"),
        ToolCallDelta(1, id="call_b", name="b"),
        ToolCallDelta(0, arguments='{"x": '),
        ToolCallDelta(1, arguments='{"y": 2}'),
        ToolCallDelta(0, arguments="1}"),
        Completed(_answer([("call_a", "a", '{"x": 1}'), ("call_b", "b", '{"y": 2}')])),
    ]
    out = [e for event in events for e in writer.feed(event)]
    assert writer.final is not None
    calls = [(i["call_id"], i["arguments"]) for i in writer.final["output"]]
    assert calls == [("call_a", '{"x": 1}'), ("call_b", '{"y": 2}')]
    done = [e["arguments"] for e in out if e["type"] == "response.function_call_arguments.done"]
    assert sorted(done) == ['{"x": 1}', '{"y": 2}']
    # Each item is done once, after its last delta.
    kinds = [(e["type"], e.get("output_index")) for e in out]
    for index in (0, 1):
        last_delta = max(
            n for n, k in enumerate(kinds) if k == ("response.function_call_arguments.delta", index)
        )
        assert kinds.index(("response.output_item.done", index)) > last_delta


def test_calls_given_only_with_the_end_are_streamed_and_stored() -> None:
    """A runtime that parses its calls at the end gives them whole with its end (the
    native stream's Completed): they are still output items of the stream."""
    writer = ResponsesEventWriter(ResponseHead.of(ResponsesRequest(model=MODEL), "req_1"))
    out = writer.feed(Completed(_answer([("call_a", "a", '{"x": 1}')])))
    assert writer.final is not None
    [call] = writer.final["output"]
    assert (call["type"], call["call_id"], call["name"], call["arguments"]) == (
        "function_call",
        "call_a",
        "a",
        '{"x": 1}',
    )
    assert [e["type"] for e in out][2:] == [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
