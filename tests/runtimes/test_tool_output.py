"""A generation's raw text as the pieces a runtime streams: a grammar-forced call as
tool-call deltas (never text), and free text that turns out to be calls (auto)."""

from __future__ import annotations

import json

from pluggably.deltas import Assembly, ToolCallDelta
from pluggably.runtimes.base import Piece
from pluggably.runtimes.prompts import AnswerFilter
from pluggably.runtimes.tool_output import Answer, AutoCalls, ForcedCall

NAMES = {"get_weather", "get_time"}


def run(answer: Answer, tokens: list[str]) -> list[Piece]:
    pieces = [p for token in tokens for p in answer.feed(token)]
    return pieces + answer.end()


def assembled(pieces: list[Piece]) -> Assembly:
    whole = Assembly()
    for piece in pieces:
        if isinstance(piece, str):
            whole.text.append(piece)
        else:
            whole.add(piece)
    return whole


def test_a_named_call_streams_its_id_and_name_first_then_the_arguments_in_pieces() -> None:
    answer = ForcedCall("get_weather")
    pieces = run(answer, ["{", '"city', '": "', "Paris", '"}'])
    first = pieces[0]
    assert first == ToolCallDelta(0, id=answer.id, name="get_weather", arguments="")
    assert pieces[1:] == [
        ToolCallDelta(0, arguments=p) for p in ["{", '"city', '": "', "Paris", '"}']
    ]
    _, (call,) = answer.result()
    assert (call.id, call.name, call.arguments) == (answer.id, "get_weather", '{"city": "Paris"}')


def test_whitespace_around_named_arguments_is_left_out() -> None:
    answer = ForcedCall("get_time")
    pieces = run(answer, ["{ ", '"tz": "CET"', "} ", "\n"])
    assert "".join(p.arguments for p in pieces if isinstance(p, ToolCallDelta)) == (
        '{ "tz": "CET"}'
    )
    assert answer.result()[1][0].arguments == '{ "tz": "CET"}'


def test_a_required_call_is_held_until_its_name_is_known() -> None:
    answer = ForcedCall(None)
    assert answer.feed('{"name": "get_') == []
    assert answer.feed('time", "arguments":') == [
        ToolCallDelta(0, id=answer.id, name="get_time", arguments="")
    ]


def test_a_required_call_streams_its_arguments_without_the_wrapper() -> None:
    answer = ForcedCall(None)
    tokens = ['{"name', '": "get_weather",', ' "arguments": ', '{"city": {"a": 1}', "}", "}", " "]
    whole = assembled(run(answer, tokens))
    (call,) = whole.tool_calls
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": {"a": 1}})
    assert call.arguments == '{"city": {"a": 1}}'
    assert whole.text == []
    assert answer.result() == ("", [call])


def test_a_required_call_cut_before_its_name_has_no_call() -> None:
    answer = ForcedCall(None)
    assert run(answer, ['{"na']) == []
    assert answer.result() == ("", [])


def test_free_text_streams_as_text_when_tools_are_offered() -> None:
    answer = AutoCalls(AnswerFilter([]), NAMES)
    assert run(answer, ["It is", " sunny."]) == ["It is", " sunny."]
    assert answer.result() == ("It is sunny.", [])


def test_a_qwen_call_in_free_text_becomes_deltas_and_never_text() -> None:
    answer = AutoCalls(AnswerFilter([]), NAMES)
    tokens = [
        "Checking. ",
        "<tool_",
        'call>\n{"name": "get_time", ',
        '"arguments": {"tz": "UTC"}}',
        "\n</tool_call>",
    ]
    pieces = run(answer, tokens)
    assert [p for p in pieces if isinstance(p, str)] == ["Checking. "]
    text, (call,) = answer.result()
    assert text == "Checking. "
    assert pieces[-2:] == [
        ToolCallDelta(0, id=call.id, name="get_time"),
        ToolCallDelta(0, arguments='{"tz": "UTC"}'),
    ]


def test_two_llama_calls_get_an_index_each() -> None:
    answer = AutoCalls(AnswerFilter([]), NAMES)
    tokens = [
        '{"name": "get_time", "parameters": {}}',
        '; {"name": "get_weather", "parameters": {}}',
    ]
    whole = assembled(run(answer, tokens))
    assert [c.name for c in whole.tool_calls] == ["get_time", "get_weather"]
    assert whole.tool_calls == answer.result()[1]


def test_json_that_is_no_call_is_released_as_text_at_the_end() -> None:
    answer = AutoCalls(AnswerFilter([]), NAMES)
    assert answer.feed('{"answer": ') == []
    assert answer.feed("42}") == []
    assert answer.end() == ['{"answer": 42}']
    assert answer.result() == ('{"answer": 42}', [])


def test_a_stop_sequence_still_ends_free_text() -> None:
    answer = AutoCalls(AnswerFilter(["END"]), NAMES)
    assert run(answer, ["done END more"]) == ["done "]
    assert (answer.stopped, answer.stop_sequence) == (True, "END")


def test_only_the_first_call_is_kept_when_calls_are_not_parallel() -> None:
    answer = AutoCalls(AnswerFilter([]), NAMES, single=True)
    tokens = ['{"name": "get_time", "parameters": {}}; {"name": "get_weather", "parameters": {}}']
    run(answer, tokens)
    assert [c.name for c in answer.result()[1]] == ["get_time"]
