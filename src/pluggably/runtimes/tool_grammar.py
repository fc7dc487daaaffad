"""The grammar that holds a GGUF model's answer to what the request asks: JSON matching
``response_format``'s schema (or any JSON object), a named function's arguments, or,
for ``tool_choice: required`` among several tools, ``{"name", "arguments"}`` for one of
them. llama.cpp samples only tokens the grammar allows, so the shape is guaranteed
whatever the model; its GBNF is compiled from a JSON Schema by llama-cpp-python."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pluggably.errors import InvalidParameter
from pluggably.messages import Features, Tool

__all__ = ["Constraint", "call_schema", "constraint_for"]

_NOT_RULE = re.compile(r"[^a-zA-Z0-9-]+")


@dataclass(frozen=True)
class Constraint:
    """A grammar (GBNF) and what the text it produces is: ``json`` (the answer's text),
    ``arguments`` (of a call to ``tool``), or ``call`` (``{"name", "arguments"}``)."""

    gbnf: str
    kind: str  # json | arguments | call
    tool: Tool | None = None


def constraint_for(features: Features) -> Constraint | None:
    """The grammar a call's features need; None for free text (``tool_choice: auto``
    is the model's own choice, read from its text afterwards)."""
    choice = features.tool_choice
    if features.uses_tools and choice.forced:
        tools = features.tools
        if choice.mode == "function":
            tools = tuple(t for t in tools if t.name == choice.name)
            if not tools:
                offered = ", ".join(t.name for t in features.tools)
                raise InvalidParameter(
                    f"tool_choice names '{choice.name}', which is not among the tools ({offered})."
                )
        if len(tools) == 1:
            tool = tools[0]
            return Constraint(
                _gbnf(arguments_schema(tool), f"tool '{tool.name}'"), "arguments", tool
            )
        return Constraint(_gbnf(call_schema(tools), "the tools"), "call")
    if features.json_output:
        schema = features.json_schema
        if schema is None:
            from llama_cpp.llama_grammar import JSON_GBNF

            return Constraint(JSON_GBNF, "json")
        return Constraint(_gbnf(schema, "response_format"), "json")
    return None


def arguments_schema(tool: Tool) -> dict[str, Any]:
    """A tool's arguments: an object per its schema (any object when it gives none)."""
    schema = dict(tool.parameters or {})
    return schema if schema else {"type": "object"}


def call_schema(tools: tuple[Tool, ...]) -> dict[str, Any]:
    """``{"name": <one of the tools>, "arguments": <that tool's arguments>}``, name
    first (so a stream learns the name before the arguments). Each tool's schema goes
    under ``$defs`` with its own definitions renamed, so ``$ref`` keeps resolving."""
    defs: dict[str, Any] = {}
    options = []
    for index, tool in enumerate(tools):
        key = f"tool{index}"
        schema = _rebased(arguments_schema(tool), key, defs)
        defs[key] = schema
        options.append(
            {
                "type": "object",
                "properties": {
                    "name": {"const": tool.name},
                    "arguments": {"$ref": f"#/$defs/{key}"},
                },
                "required": ["name", "arguments"],
            }
        )
    return {"anyOf": options, "$defs": defs}


def _rebased(schema: dict[str, Any], key: str, defs: dict[str, Any]) -> dict[str, Any]:
    """``schema`` as the definition ``key`` of a larger schema: its own ``$defs`` (or
    ``definitions``) move to the root as ``<key>-<name>``, and its references follow."""
    body = {k: v for k, v in schema.items() if k not in ("$defs", "definitions")}
    own = {**schema.get("definitions", {}), **schema.get("$defs", {})}

    def ref(target: str) -> str:
        if target == "#":
            return f"#/$defs/{key}"
        for prefix in ("#/$defs/", "#/definitions/"):
            if target.startswith(prefix):
                return f"#/$defs/{_rule_name(key, target.removeprefix(prefix))}"
        return target

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: ref(v) if k == "$ref" and isinstance(v, str) else walk(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    for name, definition in own.items():
        defs[_rule_name(key, name)] = walk(definition)
    rebased: dict[str, Any] = walk(body)
    return rebased


def _rule_name(key: str, name: str) -> str:
    """A definition's name that is also a valid GBNF rule name: the converter names a
    recursive reference's rule by it unchanged."""
    return f"{key}-{_NOT_RULE.sub('-', name)}"


def _gbnf(schema: dict[str, Any], what: str) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return str(json_schema_to_gbnf(json.dumps(schema)))
    except Exception as exc:  # the converter asserts, raises KeyError, ValueError...
        reason = str(exc) or type(exc).__name__
        raise InvalidParameter(
            f"The JSON Schema of {what} cannot be turned into a grammar ({reason}); "
            "simplify it (local $refs, standard types)."
        ) from None
