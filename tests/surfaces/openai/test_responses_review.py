"""Review of the Responses API (#18): item ids unique in a conversation (so that
input_items pages by ``after`` end), messages need content, metadata within
OpenAI's bounds. Driven with the openai SDK in strict validation over the simulator."""

from __future__ import annotations

from typing import Any

import openai
import pytest

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
