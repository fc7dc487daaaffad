"""JSON Schemas as Anthropic's structured outputs take them: every object closed
(``additionalProperties: false``), and keywords it does not support (``minimum``,
``maxLength``, ``pattern``, string formats beyond its list, …) moved into the
description, where the model can still follow them. The official SDK does the same to
the schemas it sends (``anthropic.lib._parse._transform.transform_schema``); clients of
the other surfaces send their schemas as they are, and Anthropic refuses those with a
400 ("For 'integer' type, property 'minimum' is not supported")."""

from __future__ import annotations

from typing import Any

STRING_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)


def strict_schema(schema: Any) -> Any:
    """``schema`` as Anthropic takes it (a schema it cannot read is left as it is)."""
    if not isinstance(schema, dict):
        return schema
    rest = dict(schema)
    out: dict[str, Any] = {}
    if isinstance(defs := rest.pop("$defs", None), dict):
        out["$defs"] = {name: strict_schema(sub) for name, sub in defs.items()}
    if (ref := rest.pop("$ref", None)) is not None:
        out["$ref"] = ref
        if "description" in rest:
            out["description"] = rest["description"]
        return out
    kind = rest.pop("type", None)
    _literals(rest, out)
    _variants(rest, out, kind)
    for name in ("description", "title"):
        if name in rest:
            out[name] = rest.pop(name)
    if kind == "object":
        properties = rest.pop("properties", {}) or {}
        out["properties"] = {key: strict_schema(sub) for key, sub in properties.items()}
        rest.pop("additionalProperties", None)
        out["additionalProperties"] = False
        if "required" in rest:
            out["required"] = rest.pop("required")
    elif kind == "string" and rest.get("format") in STRING_FORMATS:
        out["format"] = rest.pop("format")
    elif kind == "array":
        if "items" in rest:
            out["items"] = strict_schema(rest.pop("items"))
        if rest.get("minItems") in (0, 1):
            out["minItems"] = rest.pop("minItems")
    if rest:  # what Anthropic does not support, for the model to read
        extra = "{" + ", ".join(f"{key}: {value}" for key, value in rest.items()) + "}"
        description = out.get("description")
        out["description"] = f"{description}\n\n{extra}" if description else extra
    return out


def _literals(rest: dict[str, Any], out: dict[str, Any]) -> None:
    enum = rest.get("enum")
    if isinstance(enum, list) and enum and all(_primitive(v) for v in enum):
        out["enum"] = rest.pop("enum")
    if "const" in rest and _primitive(rest["const"]):
        out["const"] = rest.pop("const")


def _variants(rest: dict[str, Any], out: dict[str, Any], kind: Any) -> None:
    any_of, one_of, all_of = (
        rest.pop("anyOf", None),
        rest.pop("oneOf", None),
        rest.pop("allOf", None),
    )
    if isinstance(any_of or one_of, list):
        out["anyOf"] = [strict_schema(v) for v in (any_of or one_of)]
    elif isinstance(all_of, list):
        out["allOf"] = [strict_schema(v) for v in all_of]
    elif kind is not None and "enum" not in out and "const" not in out:
        out["type"] = kind


def _primitive(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
