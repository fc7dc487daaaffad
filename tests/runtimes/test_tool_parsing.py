"""Tool calls read from a model's free text (tool_choice auto), in each chat format,
and the stream watch that holds back an answer once it may be a call."""

from __future__ import annotations

import json

import pytest

from pluggably.runtimes.tool_parsing import CallWatch, Parsed, ParsedCall, parse_tool_calls

NAMES = {"get_weather", "get_time"}
PARIS = ParsedCall("get_weather", '{"city": "Paris"}')


def test_a_hermes_call_is_read_with_its_arguments() -> None:
    text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    assert parse_tool_calls(text, NAMES) == Parsed("", (PARIS,))


def test_several_qwen_calls_in_a_row_are_read_in_order() -> None:
    text = (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {"tz": "CET"}}\n</tool_call>'
    )
    parsed = parse_tool_calls(text, NAMES)
    assert parsed == Parsed("", (PARIS, ParsedCall("get_time", '{"tz": "CET"}')))


def test_text_before_a_qwen_call_stays_text() -> None:
    text = (
        'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}'
        "\n</tool_call>"
    )
    assert parse_tool_calls(text, NAMES) == Parsed("Let me check.", (PARIS,))


def test_a_hermes_call_the_model_did_not_close_is_still_read() -> None:
    text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}'
    assert parse_tool_calls(text, NAMES) == Parsed("", (PARIS,))


def test_a_llama_3_answer_that_is_one_json_call_is_read() -> None:
    text = '{"name": "get_weather", "parameters": {"city": "Paris"}}'
    assert parse_tool_calls(text, NAMES) == Parsed("", (PARIS,))


def test_a_llama_3_call_after_the_python_tag_is_read() -> None:
    text = '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}'
    assert parse_tool_calls(text, NAMES) == Parsed("", (PARIS,))


def test_llama_3_calls_separated_by_semicolons_are_all_read() -> None:
    text = (
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}; '
        '{"name": "get_time", "parameters": {"tz": "CET"}}'
    )
    assert [c.name for c in parse_tool_calls(text, NAMES).calls] == ["get_weather", "get_time"]


def test_a_mistral_call_list_is_read() -> None:
    text = '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}]'
    assert parse_tool_calls(text, NAMES) == Parsed("", (PARIS,))


def test_arguments_given_as_json_text_are_read_as_the_object() -> None:
    text = '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}'
    assert parse_tool_calls(text, NAMES) == Parsed("", (PARIS,))


def test_a_call_without_arguments_has_an_empty_object() -> None:
    text = '<tool_call>{"name": "get_time"}</tool_call>'
    assert parse_tool_calls(text, NAMES).calls == (ParsedCall("get_time", "{}"),)


def test_non_ascii_arguments_keep_their_characters() -> None:
    text = '{"name": "get_weather", "parameters": {"city": "Zürich"}}'
    (call,) = parse_tool_calls(text, NAMES).calls
    assert json.loads(call.arguments) == {"city": "Zürich"}
    assert "Zürich" in call.arguments


@pytest.mark.parametrize(
    "text",
    [
        "The weather in Paris is sunny.",
        '{"name": "send_email", "parameters": {"to": "x"}}',  # not an offered tool
        '{"answer": 42}',  # JSON, but not a call
        '{"name": "get_weather", "parameters": {"city": "Paris"}} and more words',
        "<tool_call>\nnot json\n</tool_call>",
        '{"name": "get_weather", "parameters": ["Paris"]}',  # arguments not an object
    ],
)
def test_text_that_is_not_a_known_call_stays_as_written(text: str) -> None:
    assert parse_tool_calls(text, NAMES) == Parsed(text)


def watched(watch: CallWatch, pieces: list[str]) -> str:
    return "".join(watch.feed(p) for p in pieces)


def test_plain_text_streams_through_the_watch() -> None:
    watch = CallWatch()
    assert watch.feed("The") == "The"
    assert watch.feed(" sky is") == " sky is"
    assert watch.rest() == ""


def test_an_answer_that_begins_with_a_brace_is_held_to_the_end() -> None:
    watch = CallWatch()
    assert watched(watch, [" ", '{"name"', ': "get_time"}']) == ""
    assert watch.holding
    assert watch.rest() == ' {"name": "get_time"}'


def test_an_answer_that_begins_with_part_of_a_tag_waits_until_it_is_told() -> None:
    watch = CallWatch()
    assert watch.feed("<tool") == ""
    assert watch.feed("_call>") == ""
    assert watch.holding


def test_an_answer_that_begins_like_a_tag_but_is_not_one_is_shown() -> None:
    watch = CallWatch()
    assert watch.feed("<to") == ""
    assert watch.feed("day>") == "<today>"
    assert not watch.holding


def test_text_is_shown_up_to_a_tag_in_the_middle_and_the_rest_held() -> None:
    watch = CallWatch()
    assert watch.feed("Let me check. <tool") == "Let me check. "
    assert watch.feed("_call>{") == ""
    assert watch.rest() == "<tool_call>{"


def test_a_brace_in_the_middle_of_text_is_shown() -> None:
    watch = CallWatch()
    assert watched(watch, ["Use ", "{x}", " here"]) == "Use {x} here"


def test_llama_3_2_python_calls_are_read_with_literal_arguments() -> None:
    text = '[get_weather(city="Paris", days=2, hourly=True), get_time(tz="CET")]'
    assert parse_tool_calls(text, NAMES) == Parsed(
        "",
        (
            ParsedCall("get_weather", '{"city": "Paris", "days": 2, "hourly": true}'),
            ParsedCall("get_time", '{"tz": "CET"}'),
        ),
    )


@pytest.mark.parametrize(
    "text",
    [
        "[get_weather(city=somewhere)]",  # not a literal
        '[send_email(to="x")]',  # not an offered tool
        '[get_weather("Paris")]',  # positional
        "[1, 2, 3]",
    ],
)
def test_python_lists_that_are_not_calls_stay_text(text: str) -> None:
    assert parse_tool_calls(text, NAMES) == Parsed(text)
