"""A 400 about one field of an OpenAI request, with the field in ``details`` so the
error's ``param`` names it as OpenAI's API does (``messages[2].tool_call_id``)."""

from __future__ import annotations

from pluggably.errors import GatewayError, InvalidParameter


def field_error(
    field: list[str | int], message: str, cls: type[GatewayError] = InvalidParameter
) -> GatewayError:
    return cls(message, details=[{"loc": ["body", *field], "msg": message, "type": "value_error"}])
