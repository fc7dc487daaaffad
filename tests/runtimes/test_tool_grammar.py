"""Which grammar a call's features need, and the JSON Schema of a required call among
several tools (a union of ``{name, arguments}`` objects whose references still resolve)."""

from __future__ import annotations

import jsonschema
import pytest

from pluggably.errors import InvalidParameter
from pluggably.messages import Features, ResponseFormat, Tool, ToolChoice
from pluggably.runtimes.tool_grammar import Constraint, call_schema, constraint_for

JSON_GBNF = pytest.importorskip("llama_cpp.llama_grammar").JSON_GBNF
CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = Tool("get_weather", "The weather", CITY)
PLAN = Tool(
    "plan",
    None,
    {
        "$defs": {
            "Step": {
                "type": "object",
                "properties": {
                    "n": {"type": "integer"},
                    "next": {"anyOf": [{"$ref": "#/$defs/Step"}, {"type": "null"}]},
                },
                "required": ["n"],
            }
        },
        "type": "object",
        "properties": {"steps": {"type": "array", "items": {"$ref": "#/$defs/Step"}}},
        "required": ["steps"],
    },
)


def test_a_named_function_is_held_to_its_arguments() -> None:
    features = Features(tools=(WEATHER, PLAN), tool_choice=ToolChoice("function", "plan"))
    constraint = constraint_for(features)
    assert constraint is not None
    assert (constraint.kind, constraint.tool) == ("arguments", PLAN)
    assert 'root ::= "{" space steps-kv "}" space' in constraint.gbnf


def test_required_with_one_tool_is_held_to_its_arguments() -> None:
    constraint = constraint_for(Features(tools=(WEATHER,), tool_choice=ToolChoice("required")))
    assert constraint is not None
    assert (constraint.kind, constraint.tool) == ("arguments", WEATHER)


def test_required_with_several_tools_is_held_to_a_call_of_one_of_them() -> None:
    features = Features(tools=(WEATHER, PLAN), tool_choice=ToolChoice("required"))
    constraint = constraint_for(features)
    assert constraint is not None
    assert (constraint.kind, constraint.tool) == ("call", None)
    assert "root ::= alternative-0 | alternative-1" in constraint.gbnf


def test_auto_and_none_are_free_text() -> None:
    assert constraint_for(Features(tools=(WEATHER,))) is None
    assert constraint_for(Features(tools=(WEATHER,), tool_choice=ToolChoice("none"))) is None


def test_json_object_is_any_json() -> None:
    features = Features(response_format=ResponseFormat("json_object"))
    assert constraint_for(features) == Constraint(JSON_GBNF, "json")


def test_json_schema_is_held_to_the_schema() -> None:
    features = Features(response_format=ResponseFormat("json_schema", schema=CITY))
    constraint = constraint_for(features)
    assert constraint is not None
    assert constraint.kind == "json"
    assert 'city-kv ::= "\\"city\\"" space ":" space string' in constraint.gbnf


def test_a_forced_call_wins_over_json_output() -> None:
    features = Features(
        tools=(WEATHER,),
        tool_choice=ToolChoice("required"),
        response_format=ResponseFormat("json_object"),
    )
    constraint = constraint_for(features)
    assert constraint is not None
    assert constraint.kind == "arguments"


def test_a_named_function_not_among_the_tools_is_an_invalid_parameter() -> None:
    features = Features(tools=(WEATHER,), tool_choice=ToolChoice("function", "send_email"))
    with pytest.raises(InvalidParameter, match="'send_email', which is not among the tools"):
        constraint_for(features)


def test_a_schema_the_converter_cannot_read_is_an_invalid_parameter() -> None:
    remote = {"$ref": "https://example.com/schema.json"}
    features = Features(response_format=ResponseFormat("json_schema", schema=remote))
    with pytest.raises(InvalidParameter, match="JSON Schema of response_format"):
        constraint_for(features)


def test_a_call_schema_accepts_each_tool_with_its_own_arguments() -> None:
    schema = call_schema((WEATHER, PLAN))
    jsonschema.validate({"name": "get_weather", "arguments": {"city": "Paris"}}, schema)
    steps = {"steps": [{"n": 1, "next": {"n": 2, "next": None}}]}
    jsonschema.validate({"name": "plan", "arguments": steps}, schema)


@pytest.mark.parametrize(
    "call",
    [
        {"name": "get_weather", "arguments": {}},  # its required city is missing
        {"name": "plan", "arguments": {"steps": [{"n": "one"}]}},  # a referenced def
        {"name": "send_email", "arguments": {}},
    ],
)
def test_a_call_schema_rejects_what_no_tool_takes(call: dict[str, object]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(call, call_schema((WEATHER, PLAN)))
